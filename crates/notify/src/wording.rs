//! The words of every message, in each language Tanda speaks: Project Fluent files
//! (`locales/{ko,en}/notify.ftl`) compiled into the binary. A notification is stored as a message
//! key and its arguments, and worded only when someone reads it, in the receiver's language at
//! that moment; money and times are written that language's way then (`tanda_core::locale`).

use std::collections::{BTreeMap, HashMap};

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, langid, static_loader};
use serde::{Deserialize, Serialize};
use tanda_core::Timestamp;
use tanda_core::locale::Locale;

static_loader! {
    static MESSAGES = {
        locales: "./locales",
        fallback_language: "ko",
        // Isolation marks around arguments serve right-to-left scripts only; Tanda has none.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// One argument of a message, as stored (JSON: `{"won": 11200}`, `{"text": "Seoul Station"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arg {
    /// Shown as it is: a place, a name, an id.
    Text(String),
    /// A count (minutes), which a language may choose its plural forms by.
    Number(i64),
    /// An amount of won: `11,200원`, `₩11,200`.
    Won(i64),
    /// A moment (epoch milliseconds), in Seoul time: `11월 21일 18:30`, `21 Nov 18:30`.
    Time(Timestamp),
}

/// A message's arguments by name.
pub type Args = BTreeMap<String, Arg>;

/// `Args` from `(name, argument)` pairs.
pub fn args<const N: usize>(pairs: [(&str, Arg); N]) -> Args {
    pairs
        .into_iter()
        .map(|(name, arg)| (name.to_owned(), arg))
        .collect()
}

fn language(locale: Locale) -> LanguageIdentifier {
    match locale {
        Locale::Ko => langid!("ko"),
        Locale::En => langid!("en"),
    }
}

fn value(locale: Locale, arg: &Arg) -> FluentValue<'_> {
    match arg {
        Arg::Text(text) => FluentValue::from(text.as_str()),
        Arg::Number(n) => FluentValue::from(*n),
        Arg::Won(amount) => FluentValue::from(locale.won(*amount)),
        Arg::Time(at) => FluentValue::from(locale.time(*at)),
    }
}

/// Message `key` with `args`, in `locale`. Every key is in every language with the same
/// arguments (tested), so the fallbacks (the other language, then the key itself) are for a row
/// stored by a later version that this one does not know.
pub fn render(locale: Locale, key: &str, args: &Args) -> String {
    let others = Locale::ALL.into_iter().filter(|l| *l != locale);
    for locale in std::iter::once(locale).chain(others) {
        let values: HashMap<&str, FluentValue> = args
            .iter()
            .map(|(name, arg)| (name.as_str(), value(locale, arg)))
            .collect();
        if let Ok(text) = MESSAGES.lookup_single_language(&language(locale), key, Some(&values)) {
            return text;
        }
    }
    key.to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fluent_syntax::ast;

    use super::*;

    const FILES: [(Locale, &str); 2] = [
        (Locale::Ko, include_str!("../locales/ko/notify.ftl")),
        (Locale::En, include_str!("../locales/en/notify.ftl")),
    ];

    /// Each message of an FTL file with the variables it uses.
    fn messages(ftl: &str) -> BTreeMap<String, BTreeSet<String>> {
        let resource = fluent_syntax::parser::parse(ftl).expect("the file parses");
        let mut found = BTreeMap::new();
        for entry in resource.body {
            if let ast::Entry::Message(message) = entry {
                let mut variables = BTreeSet::new();
                if let Some(pattern) = &message.value {
                    pattern_variables(pattern, &mut variables);
                }
                for attribute in &message.attributes {
                    pattern_variables(&attribute.value, &mut variables);
                }
                found.insert(message.id.name.to_owned(), variables);
            }
        }
        found
    }

    fn pattern_variables(pattern: &ast::Pattern<&str>, into: &mut BTreeSet<String>) {
        for element in &pattern.elements {
            if let ast::PatternElement::Placeable { expression } = element {
                expression_variables(expression, into);
            }
        }
    }

    fn expression_variables(expression: &ast::Expression<&str>, into: &mut BTreeSet<String>) {
        match expression {
            ast::Expression::Inline(inline) => inline_variables(inline, into),
            ast::Expression::Select { selector, variants } => {
                inline_variables(selector, into);
                for variant in variants {
                    pattern_variables(&variant.value, into);
                }
            }
        }
    }

    fn inline_variables(inline: &ast::InlineExpression<&str>, into: &mut BTreeSet<String>) {
        match inline {
            ast::InlineExpression::VariableReference { id } => {
                into.insert(id.name.to_owned());
            }
            ast::InlineExpression::Placeable { expression } => {
                expression_variables(expression, into);
            }
            ast::InlineExpression::FunctionReference { arguments, .. } => {
                for argument in &arguments.positional {
                    inline_variables(argument, into);
                }
                for named in &arguments.named {
                    inline_variables(&named.value, into);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_message_is_in_every_language_with_the_same_arguments() {
        let [(_, korean), (_, english)] = FILES.map(|(locale, ftl)| (locale, messages(ftl)));
        assert!(korean.len() >= 25, "{korean:?}");
        assert_eq!(
            korean.keys().collect::<Vec<_>>(),
            english.keys().collect::<Vec<_>>(),
            "the same messages in ko and en"
        );
        for (key, variables) in &korean {
            assert_eq!(Some(variables), english.get(key), "the arguments of {key}");
        }
    }

    #[test]
    fn every_message_renders_in_every_language_without_errors() {
        for (locale, ftl) in FILES {
            for (key, variables) in messages(ftl) {
                let args: Args = variables
                    .iter()
                    .map(|v| (v.clone(), Arg::Text(format!("<{v}>"))))
                    .collect();
                let values: HashMap<&str, FluentValue> = args
                    .iter()
                    .map(|(name, arg)| (name.as_str(), value(locale, arg)))
                    .collect();
                let text = MESSAGES
                    .lookup_single_language(&language(locale), &key, Some(&values))
                    .unwrap_or_else(|e| panic!("{locale} {key}: {e:?}"));
                for v in &variables {
                    assert!(text.contains(&format!("<{v}>")), "{locale} {key}: {text}");
                }
            }
        }
    }

    #[test]
    fn money_and_times_are_written_the_reader_s_way() {
        let offer = args([
            ("pickup", Arg::Text("Seoul Station".into())),
            ("dropoff", Arg::Text("Gangnam Station".into())),
            // 09:30:15 UTC is 18:30 in Seoul.
            ("deadline", Arg::Time(1_795_253_415_000)),
        ]);
        assert_eq!(
            render(Locale::En, "ride-offered", &offer),
            "New ride: Seoul Station → Gangnam Station. Accept by 21 Nov 18:30 (Seoul time)."
        );
        assert_eq!(
            render(Locale::Ko, "ride-offered", &offer),
            "새 호출이 왔어요: Seoul Station → Gangnam Station. 11월 21일 18:30까지 수락해 주세요."
        );
        let paid = args([
            ("amount", Arg::Won(120_000)),
            ("balance", Arg::Won(1_880_000)),
        ]);
        assert_eq!(
            render(Locale::En, "payment-succeeded", &paid),
            "Paid ₩120,000; balance ₩1,880,000."
        );
        assert_eq!(
            render(Locale::Ko, "payment-succeeded", &paid),
            "120,000원을 결제했어요. 남은 잔액은 1,880,000원이에요."
        );
    }

    #[test]
    fn a_key_this_version_does_not_know_reads_as_itself() {
        assert_eq!(
            render(Locale::En, "from-a-later-version", &Args::new()),
            "from-a-later-version"
        );
    }

    #[test]
    fn arguments_are_stored_as_tagged_json() {
        let stored = args([
            ("fare", Arg::Won(11_200)),
            ("minutes", Arg::Number(5)),
            ("pickup", Arg::Text("Seoul Station".into())),
            ("deadline", Arg::Time(1_000)),
        ]);
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            json,
            r#"{"deadline":{"time":1000},"fare":{"won":11200},"minutes":{"number":5},"pickup":{"text":"Seoul Station"}}"#
        );
        assert_eq!(serde_json::from_str::<Args>(&json).unwrap(), stored);
    }
}
