//! The services Tanda runs: the list is `tanda_registry`'s, shared with the gateway's tests.

pub use tanda_registry::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Service;

    #[test]
    fn every_service_process_has_its_spec_and_every_spec_a_process() {
        for service in Service::ALL.into_iter().filter(|s| *s != Service::Gateway) {
            assert!(spec(service.name()).is_some(), "{}", service.name());
        }
        assert_eq!(SERVICES.len(), Service::ALL.len() - 1);
    }
}
