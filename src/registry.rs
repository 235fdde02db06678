//! The services Tanda runs: the list is `tanda_registry`'s, shared with the gateway's tests.

pub use tanda_registry::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Service;

    #[test]
    fn each_process_is_named_on_the_command_line_and_has_a_port_of_its_own() {
        use clap::ValueEnum;
        let mut offsets = Vec::new();
        for service in Service::all() {
            assert_eq!(Service::from_str(service.name(), false), Ok(*service));
            offsets.push(service.port_offset());
        }
        let expected: Vec<u16> = (0..=u16::try_from(SERVICES.len()).unwrap()).collect();
        assert_eq!(
            offsets, expected,
            "the gateway at +0, each service after it"
        );
        assert_eq!(Service::Gateway.port_offset(), 0);
    }

    /// The deploy files name the services too (a process, a database, an upstream each): they
    /// are data, not code, so this test is what keeps them in step with the registry.
    #[test]
    fn the_deploy_files_run_every_registered_service_and_no_other() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |path: &str| {
            std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let k8s = read("deploy/k8s/overlays/distributed/kustomization.yaml");
        let compose = read("deploy/compose.yaml");
        let names: Vec<&str> = specs().map(|s| s.name).collect();
        for name in &names {
            let overlay =
                format!("deploy/k8s/overlays/distributed/services/{name}/kustomization.yaml");
            assert!(
                read(&overlay).contains(&format!("value: [serve, {name}]")),
                "{overlay}"
            );
            assert!(
                k8s.contains(&format!("  - services/{name}\n")),
                "{name} in the distributed overlay"
            );
            assert!(
                compose.contains(&format!("command: [serve, {name}]")),
                "{name} in compose.yaml"
            );
        }
        for (file, marker) in [(&k8s, "TANDA_UPSTREAMS="), (&compose, "&upstreams ")] {
            let line = file
                .lines()
                .find_map(|l| l.split_once(marker))
                .expect(marker)
                .1;
            let upstreams: Vec<&str> = line
                .split(',')
                .map(|u| u.split_once('=').expect("SERVICE=URL").0)
                .collect();
            assert_eq!(upstreams, names, "{marker}");
        }
    }
}
