//! The deployment files under `deploy/` stay honest although containers cannot run here: every
//! node configuration they hand out loads with the real loader (every setting exists and is
//! valid), the nodes of one deployment agree on what must be equal, and every path the
//! Dockerfile copies exists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use region_node::Settings;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn load(relative: &str) -> Settings {
    let path = repository().join(relative);
    assert!(path.is_file(), "{relative} is missing");
    Settings::load(Some(&path)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn the_compose_nodes_load_and_agree_on_the_deployment() {
    let regions = ["eu-west", "us-east", "ap-northeast"];
    let nodes: Vec<Settings> = regions
        .iter()
        .map(|r| load(&format!("deploy/compose/{r}.toml")))
        .collect();
    let compose =
        std::fs::read_to_string(repository().join("deploy/compose/compose.yaml")).unwrap();
    for (region, node) in regions.iter().zip(&nodes) {
        assert_eq!(node.region.as_str(), *region);
        assert!(
            compose.contains(&format!("{region}.toml")),
            "compose does not mount {region}.toml"
        );
        // Three brokers, so topics are replicated and acknowledged by two.
        assert_eq!(node.kafka.replication_factor, 3, "{region}");
        assert_eq!(node.kafka.min_insync_replicas, 2, "{region}");
        assert!(
            !node.database.migrate_on_start,
            "{region}: compose runs `migrate` first"
        );
    }
    let first = &nodes[0];
    for node in &nodes[1..] {
        assert_eq!(node.all_regions(), first.all_regions(), "regions differ");
        assert_eq!(
            node.kafka.partitions, first.kafka.partitions,
            "partitions differ"
        );
        assert_eq!(
            node.kafka.topic_prefix, first.kafka.topic_prefix,
            "topic prefixes differ"
        );
        assert_eq!(
            node.ownership().unwrap().fingerprint(),
            first.ownership().unwrap().fingerprint(),
            "registry ownership differs"
        );
    }
    assert_eq!(first.all_regions().len(), 3);
}

#[test]
fn the_kubernetes_config_loads_and_is_the_one_in_the_config_map() {
    let node = load("deploy/kubernetes/node.toml");
    assert!(
        !node.database.migrate_on_start,
        "the init container runs `migrate`"
    );
    let toml = std::fs::read_to_string(repository().join("deploy/kubernetes/node.toml")).unwrap();
    let map =
        std::fs::read_to_string(repository().join("deploy/kubernetes/configmap.yaml")).unwrap();
    for line in toml.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            map.contains(line),
            "configmap.yaml lacks {line:?} of node.toml"
        );
    }
}

#[test]
fn every_path_the_dockerfile_copies_exists() {
    let root = repository();
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    let mut copied = 0;
    for line in dockerfile.lines().map(str::trim) {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let words: Vec<&str> = args.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let sources = words
            .iter()
            .filter(|w| !w.starts_with("--"))
            .copied()
            .collect::<Vec<_>>();
        let (_, sources) = sources.split_last().expect("COPY has a destination");
        for source in sources {
            assert!(
                root.join(source).exists(),
                "the Dockerfile copies {source}, which does not exist"
            );
            copied += 1;
        }
    }
    assert!(
        copied > 0,
        "the Dockerfile copies nothing from the repository"
    );
    // Every workspace member is copied: a new crate must not break the image build.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap();
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        assert!(
            dockerfile.contains(&format!("COPY {member} "))
                || dockerfile.contains(&format!("COPY {member}/ ")),
            "the Dockerfile does not copy the workspace member {member}"
        );
    }
}
