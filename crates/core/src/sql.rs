//! The one way services run SQL, on SQLite and PostgreSQL alike: `query(..).bind(..)` then
//! `execute`/`fetch_*` on a unit of work's connection (`uow.conn()`) or a database's readers
//! (`db.reader()`). SQL is written once: `$N` placeholders, `ON CONFLICT`, ids as VARCHAR, money
//! and times as BIGINT.
//!
//! The two engines are driven differently, each the way it is fastest:
//! - **SQLite** is a library in this process: a statement runs right where it is called, on the
//!   calling task, through SQLite's C API with a per-connection cache of prepared statements. A
//!   statement on a local file takes microseconds, less than handing it to another thread would
//!   (see BENCHMARKS.md).
//! - **PostgreSQL** is a server: statements go through sqlx's asynchronous driver, prepared and
//!   cached per connection.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::Postgres;

use crate::db::{DbError, Reader, Tx};

/// SQL text: a literal, or a string built at run time that the caller vouches for
/// (`AssertSqlSafe`): no value is ever spliced into SQL, values are bound.
pub trait SqlStr {
    fn into_sql(self) -> Cow<'static, str>;
}
impl SqlStr for &'static str {
    fn into_sql(self) -> Cow<'static, str> {
        Cow::Borrowed(self)
    }
}
/// SQL built at run time (a table name, a list of placeholders); never values.
pub struct AssertSqlSafe<T>(pub T);
impl SqlStr for AssertSqlSafe<String> {
    fn into_sql(self) -> Cow<'static, str> {
        Cow::Owned(self.0)
    }
}
impl SqlStr for AssertSqlSafe<&str> {
    fn into_sql(self) -> Cow<'static, str> {
        Cow::Owned(self.0.to_owned())
    }
}

/// A statement and the values bound to its `$1`, `$2`, …
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct Query<'q> {
    sql: Cow<'static, str>,
    params: Vec<Param<'q>>,
}

/// A statement whose rows are read as their first column.
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct QueryScalar<'q, T> {
    query: Query<'q>,
    _column: std::marker::PhantomData<fn() -> T>,
}

pub fn query<'q>(sql: impl SqlStr) -> Query<'q> {
    Query {
        sql: sql.into_sql(),
        params: Vec::new(),
    }
}

pub fn query_scalar<'q, T: FromValue>(sql: impl SqlStr) -> QueryScalar<'q, T> {
    QueryScalar {
        query: query(sql),
        _column: std::marker::PhantomData,
    }
}

/// What `execute` did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows_affected: u64,
}
impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

impl<'q> Query<'q> {
    /// Binds the next placeholder (`$1` first).
    pub fn bind(mut self, value: impl Encode<'q>) -> Self {
        self.params.push(value.encode());
        self
    }

    pub async fn execute<'e>(self, on: impl Executor<'e>) -> Result<Done, DbError> {
        match self.run(on.target(), Want::Nothing).await? {
            Outcome::Done(rows_affected) => Ok(Done { rows_affected }),
            Outcome::Rows(_) => unreachable!("asked for no rows"),
        }
    }

    pub async fn fetch_all<'e>(self, on: impl Executor<'e>) -> Result<Vec<Row>, DbError> {
        match self.run(on.target(), Want::All).await? {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Done(_) => unreachable!("asked for rows"),
        }
    }

    pub async fn fetch_optional<'e>(self, on: impl Executor<'e>) -> Result<Option<Row>, DbError> {
        match self.run(on.target(), Want::First).await? {
            Outcome::Rows(rows) => Ok(rows.into_iter().next()),
            Outcome::Done(_) => unreachable!("asked for rows"),
        }
    }

    pub async fn fetch_one<'e>(self, on: impl Executor<'e>) -> Result<Row, DbError> {
        self.fetch_optional(on).await?.ok_or(DbError::RowNotFound)
    }

    async fn run(self, target: Target<'_>, want: Want) -> Result<Outcome, DbError> {
        match target {
            Target::Sqlite(conn) => sqlite::run(conn, &self.sql, &self.params, want),
            Target::SqliteReaders(readers) => {
                readers.with(|conn| sqlite::run(conn, &self.sql, &self.params, want))
            }
            Target::Postgres(conn) => postgres::run(conn, self, want).await,
            Target::PostgresPool(pool) => postgres::run(pool, self, want).await,
        }
    }
}

impl<'q, T: FromValue> QueryScalar<'q, T> {
    pub fn bind(mut self, value: impl Encode<'q>) -> Self {
        self.query = self.query.bind(value);
        self
    }
    pub async fn fetch_one<'e>(self, on: impl Executor<'e>) -> Result<T, DbError> {
        self.query.fetch_one(on).await?.first()
    }
    pub async fn fetch_optional<'e>(self, on: impl Executor<'e>) -> Result<Option<T>, DbError> {
        self.query
            .fetch_optional(on)
            .await?
            .map(|row| row.first())
            .transpose()
    }
    pub async fn fetch_all<'e>(self, on: impl Executor<'e>) -> Result<Vec<T>, DbError> {
        self.query
            .fetch_all(on)
            .await?
            .iter()
            .map(Row::first)
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Want {
    Nothing,
    First,
    All,
}

enum Outcome {
    Done(u64),
    Rows(Vec<Row>),
}

/// Where a query runs: a unit of work's connection (`&mut Tx`, from `uow.conn()`) or a
/// database's readers (`&Reader`, from `db.reader()`).
pub trait Executor<'e>: Send + private::Sealed {
    #[doc(hidden)]
    fn target(self) -> Target<'e>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for &mut crate::db::Tx {}
    impl Sealed for &crate::db::Reader {}
    impl Sealed for &mut super::Conn<'_> {}
}

/// Runs a script of several statements (a migration) in a unit of work, as the engine itself
/// splits it: never by cutting the text at each `;`, which breaks on a `;` inside a string, a
/// comment or a function body.
pub async fn execute_script(script: &'static str, tx: &mut Tx) -> Result<(), DbError> {
    match tx.target() {
        Target::Sqlite(conn) => conn.execute_batch(script).map_err(DbError::from),
        Target::Postgres(conn) => sqlx::raw_sql(script)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from),
        Target::SqliteReaders(_) | Target::PostgresPool(_) => {
            unreachable!("a unit of work writes on its own connection")
        }
    }
}

/// Either place a query can run, for code that reads the same way inside a unit of work and
/// outside one: pass `&mut conn` to each query, as with a connection.
pub enum Conn<'a> {
    Write(&'a mut Tx),
    Read(&'a Reader),
}

impl<'a> From<&'a mut Tx> for Conn<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Conn::Write(tx)
    }
}
impl<'a> From<&'a Reader> for Conn<'a> {
    fn from(reader: &'a Reader) -> Self {
        Conn::Read(reader)
    }
}
impl<'e> Executor<'e> for &'e mut Conn<'_> {
    fn target(self) -> Target<'e> {
        match self {
            Conn::Write(tx) => tx.target(),
            Conn::Read(reader) => reader.target(),
        }
    }
}

#[doc(hidden)]
pub enum Target<'e> {
    Sqlite(&'e mut rusqlite::Connection),
    SqliteReaders(&'e crate::db::SqliteReaders),
    Postgres(&'e mut sqlx::PgConnection),
    PostgresPool(&'e sqlx::PgPool),
}

impl<'e> Executor<'e> for &'e mut Tx {
    fn target(self) -> Target<'e> {
        self.target()
    }
}
impl<'e> Executor<'e> for &'e Reader {
    fn target(self) -> Target<'e> {
        self.target()
    }
}

/// A bound value. `None`s keep their type: PostgreSQL needs to know what a NULL is.
#[derive(Debug, Clone)]
pub enum Param<'q> {
    Int(Option<i64>),
    Int4(Option<i32>),
    Real(Option<f64>),
    Text(Option<Cow<'q, str>>),
}

/// Values that can be bound to a placeholder.
pub trait Encode<'q> {
    fn encode(self) -> Param<'q>;
}

macro_rules! encode {
    ($($t:ty => $variant:ident $(via $conv:path)?),* $(,)?) => {$(
        impl<'q> Encode<'q> for $t {
            fn encode(self) -> Param<'q> {
                Param::$variant(Some(encode!(@conv self $(, $conv)?)))
            }
        }
        impl<'q> Encode<'q> for Option<$t> {
            fn encode(self) -> Param<'q> {
                Param::$variant(self.map(|v| encode!(@conv v $(, $conv)?)))
            }
        }
    )*};
    (@conv $v:expr) => { $v };
    (@conv $v:expr, $conv:path) => { $conv($v) };
}
encode! {
    i64 => Int,
    i32 => Int4,
    f64 => Real,
    // Flags are INTEGER 0/1 columns on both engines (PostgreSQL will not store a BOOLEAN in one).
    bool => Int4 via i32::from,
    String => Text via Cow::Owned,
    &'q str => Text via Cow::Borrowed,
}
impl<'q> Encode<'q> for &'q String {
    fn encode(self) -> Param<'q> {
        Param::Text(Some(Cow::Borrowed(self.as_str())))
    }
}
impl<'q> Encode<'q> for Option<&'q String> {
    fn encode(self) -> Param<'q> {
        Param::Text(self.map(|s| Cow::Borrowed(s.as_str())))
    }
}
impl<'q> Encode<'q> for &'q Option<String> {
    fn encode(self) -> Param<'q> {
        Param::Text(self.as_deref().map(Cow::Borrowed))
    }
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A row read by a query; columns are looked up by name (`try_get`).
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[Box<str>]>,
    values: Vec<Value>,
}

impl Row {
    /// The named column, as `T` (`Option<T>` for a column that may be NULL).
    pub fn try_get<T: FromValue, I: AsRef<str>>(&self, column: I) -> Result<T, DbError> {
        let column = column.as_ref();
        let index = self
            .columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))
            .ok_or_else(|| DbError::Decode(format!("no column `{column}`")))?;
        T::from_value(&self.values[index])
            .map_err(|e| DbError::Decode(format!("column `{column}`: {e}")))
    }

    /// The named column, as `T`; panics if it is missing or of another type, which only a schema
    /// changed behind the code's back can cause. Prefer `try_get` where a row's shape may vary.
    #[track_caller]
    pub fn get<T: FromValue, I: AsRef<str>>(&self, column: I) -> T {
        self.try_get(column).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every column's value, in the order the query selected them.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    fn first<T: FromValue>(&self) -> Result<T, DbError> {
        let value = self
            .values
            .first()
            .ok_or_else(|| DbError::Decode("no column".into()))?;
        T::from_value(value).map_err(|e| DbError::Decode(e.to_string()))
    }
}

/// Types a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn unexpected(want: &str, got: &Value) -> String {
    format!("expected {want}, found {got:?}")
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(i) => Ok(*i),
            other => Err(unexpected("an integer", other)),
        }
    }
}
impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let wide = i64::from_value(value)?;
        i32::try_from(wide).map_err(|_| format!("{wide} does not fit 32 bits"))
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(r) => Ok(*r),
            // SQLite keeps a whole REAL written as an integer when the column has no affinity.
            Value::Int(i) => Ok(*i as f64),
            other => Err(unexpected("a number", other)),
        }
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(i64::from_value(value)? != 0)
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(unexpected("text", other)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

mod sqlite {
    use super::*;
    use rusqlite::types::{ToSqlOutput, ValueRef};

    impl rusqlite::ToSql for Param<'_> {
        fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
            use rusqlite::types::Value as V;
            Ok(match self {
                Param::Int(Some(i)) => ToSqlOutput::Owned(V::Integer(*i)),
                Param::Int4(Some(i)) => ToSqlOutput::Owned(V::Integer(i64::from(*i))),
                Param::Real(Some(r)) => ToSqlOutput::Owned(V::Real(*r)),
                Param::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
                Param::Int(None) | Param::Int4(None) | Param::Real(None) | Param::Text(None) => {
                    ToSqlOutput::Owned(V::Null)
                }
            })
        }
    }

    /// Runs one statement on `conn`, on this thread: prepared once per connection and cached.
    pub(super) fn run(
        conn: &mut rusqlite::Connection,
        sql: &str,
        params: &[Param<'_>],
        want: Want,
    ) -> Result<Outcome, DbError> {
        let mut statement = conn.prepare_cached(sql)?;
        for index in 1..=statement.parameter_count() {
            // `$N` names its value; SQLite numbers parameters in order of first appearance.
            let n = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(index);
            let value = params
                .get(n - 1)
                .ok_or_else(|| DbError::Decode(format!("no value bound for ${n} in: {sql}")))?;
            statement.raw_bind_parameter(index, value)?;
        }
        if let Want::Nothing = want {
            if statement.column_count() > 0 {
                // A statement that yields rows (`SELECT 1`) run for its effect: step through them.
                let mut rows = statement.raw_query();
                while rows.next()?.is_some() {}
                return Ok(Outcome::Done(0));
            }
            return Ok(Outcome::Done(statement.raw_execute()? as u64));
        }
        let columns: Arc<[Box<str>]> = statement
            .column_names()
            .into_iter()
            .map(Box::from)
            .collect();
        let width = columns.len();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Real(r) => Value::Real(r),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row {
                columns: columns.clone(),
                values,
            });
            if let Want::First = want {
                break;
            }
        }
        Ok(Outcome::Rows(out))
    }
}

mod postgres {
    use super::*;
    use sqlx::postgres::PgRow;
    use sqlx::{Row as _, TypeInfo as _, ValueRef as _};

    pub(super) async fn run<'c, E>(on: E, q: Query<'_>, want: Want) -> Result<Outcome, DbError>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        let sql: sqlx::SqlStr = match q.sql {
            Cow::Borrowed(s) => sqlx::SqlSafeStr::into_sql_str(s),
            Cow::Owned(s) => sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(s)),
        };
        let mut query = sqlx::query(sql);
        for param in q.params {
            query = match param {
                Param::Int(v) => query.bind(v),
                Param::Int4(v) => query.bind(v),
                Param::Real(v) => query.bind(v),
                Param::Text(v) => query.bind(v.map(Cow::into_owned)),
            };
        }
        Ok(match want {
            Want::Nothing => Outcome::Done(query.execute(on).await?.rows_affected()),
            Want::First => Outcome::Rows(
                query
                    .fetch_optional(on)
                    .await?
                    .map(|row| convert(&row))
                    .transpose()?
                    .into_iter()
                    .collect(),
            ),
            Want::All => Outcome::Rows(
                query
                    .fetch_all(on)
                    .await?
                    .iter()
                    .map(convert)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn convert(row: &PgRow) -> Result<Row, DbError> {
        use sqlx::Column as _;
        let columns: Arc<[Box<str>]> = row.columns().iter().map(|c| Box::from(c.name())).collect();
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                values.push(Value::Null);
                continue;
            }
            values.push(match raw.type_info().name() {
                "INT8" => Value::Int(row.try_get::<i64, _>(i)?),
                "INT4" => Value::Int(i64::from(row.try_get::<i32, _>(i)?)),
                "INT2" => Value::Int(i64::from(row.try_get::<i16, _>(i)?)),
                "BOOL" => Value::Int(i64::from(row.try_get::<bool, _>(i)?)),
                "FLOAT8" => Value::Real(row.try_get::<f64, _>(i)?),
                "FLOAT4" => Value::Real(f64::from(row.try_get::<f32, _>(i)?)),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::Text(row.try_get::<String, _>(i)?),
                other => {
                    return Err(DbError::Decode(format!(
                        "column `{}` has type {other}, which Tanda does not read",
                        columns[i]
                    )));
                }
            });
        }
        Ok(Row { columns, values })
    }
}
