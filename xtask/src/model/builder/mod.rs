//! A buildx builder as `docker buildx inspect [NAME]` prints it (buildx
//! 0.13.1 and 0.29.1 print the same text; neither has a JSON form of it),
//! which node of it builds which platform, and how the commands of a run
//! select it (`--builder NAME`).
//!
//! The text (buildx `commands/inspect.go`): the builder's `Name:`, `Driver:`,
//! `Last Activity:` and `Error:`, then `Nodes:` and one block per node, blank
//! lines between them: `Name:`, `Endpoint:`, `Driver Options:`, then `Error:`
//! or `Status:`, `BuildKit daemon flags:`, `BuildKit version:`, `Platforms:`
//! (those set with `buildx create --platform` first, marked `*`, then those
//! the node's workers report), and indented sections (labels, devices, GC
//! policy, files) whose lines are not the node's fields.
//!
//! Routing (buildx `build/resolver/driver.go`, the same from 0.13 to 0.29):
//! when every requested platform is among some node's `*` platforms, each
//! goes to the first such node; otherwise each goes to the first node that
//! lists it at all; a platform no node lists goes to node 0 *without an
//! error* and fails at its first `RUN` ("exec format error"), so we refuse it.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::names::Platform;

mod selection;
pub use selection::{Selection, Via};

/// A builder and its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub name: String,
    /// `docker`, `docker-container`, `kubernetes`, `remote`.
    pub driver: String,
    /// What buildx says is wrong with the builder as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub nodes: Vec<Node>,
}

/// One node (one BuildKit) of a builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// A docker context name, a `unix://`/`tcp://` address, a Kubernetes namespace...
    pub endpoint: String,
    /// `running`, `inactive`, `stopped`...; `None` when buildx printed an error instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every platform it lists, in buildx's order, `*` marks stripped.
    pub platforms: Vec<String>,
    /// Those set with `buildx create --platform` (marked `*`): routed to first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configured: Vec<String>,
}

impl Node {
    /// A stopped or inactive node lists only its configured platforms until it boots.
    pub fn running(&self) -> bool {
        self.error.is_none() && self.status.as_deref() == Some("running")
    }

    /// The platform it builds on natively: the first its worker reports.
    pub fn native_platform(&self) -> Option<&str> {
        self.platforms
            .iter()
            .find(|p| !self.configured.contains(p))
            .or(self.platforms.first())
            .map(String::as_str)
    }
}

/// Whether a listed platform builds `wanted`: the same, or a variant of it
/// (`linux/amd64/v2` builds `linux/amd64`).
fn builds(listed: &str, wanted: &str) -> bool {
    listed == wanted || listed.starts_with(&format!("{wanted}/"))
}

/// Where one requested platform is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub platform: Platform,
    /// The node's index; `None`: no node lists it (buildx would send it to node 0).
    pub node: Option<usize>,
}

impl Builder {
    /// Every platform some node lists, each once, in order.
    pub fn platforms(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for platform in self.nodes.iter().flat_map(|n| &n.platforms) {
            if !all.contains(platform) {
                all.push(platform.clone());
            }
        }
        all
    }

    /// Some node lists `platform`.
    pub fn supports(&self, platform: &Platform) -> bool {
        let wanted = platform.to_string();
        self.platforms().iter().any(|p| builds(p, &wanted))
    }

    /// Which node builds each of `platforms`, as buildx routes them.
    pub fn route(&self, platforms: &[Platform]) -> Vec<Route> {
        let first_node = |wanted: &str, lists: &dyn Fn(&Node) -> &[String], exact: bool| {
            self.nodes.iter().position(|node| {
                lists(node).iter().any(|p| {
                    if exact {
                        p == wanted
                    } else {
                        builds(p, wanted)
                    }
                })
            })
        };
        let configured: Vec<Option<usize>> = platforms
            .iter()
            .map(|p| first_node(&p.to_string(), &|n| &n.configured, false))
            .collect();
        let nodes: Vec<Option<usize>> = if configured.iter().all(Option::is_some) {
            configured
        } else {
            platforms
                .iter()
                .map(|p| {
                    let wanted = p.to_string();
                    first_node(&wanted, &|n| &n.platforms, true)
                        .or_else(|| first_node(&wanted, &|n| &n.platforms, false))
                })
                .collect()
        };
        platforms
            .iter()
            .zip(nodes)
            .map(|(platform, node)| Route {
                platform: platform.clone(),
                node,
            })
            .collect()
    }

    /// `linux/amd64 on node a (ENDPOINT), linux/riscv64 on no node...`: what
    /// the preflight says of a run's routes.
    pub fn describe(&self, routes: &[Route]) -> String {
        let routes: Vec<String> = routes
            .iter()
            .map(|route| match route.node.and_then(|i| self.nodes.get(i)) {
                Some(node) => format!(
                    "{} on node {} ({})",
                    route.platform, node.name, node.endpoint
                ),
                None => format!("{} on no node", route.platform),
            })
            .collect();
        routes.join(", ")
    }

    /// What each node lists, or why it lists nothing: `a: linux/amd64, ...; b: error ...`.
    pub fn describe_nodes(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| {
                let state = match (&node.error, node.status.as_deref()) {
                    (Some(error), _) => format!("error: {error}"),
                    (None, Some(status)) if status != "running" => {
                        format!("{status}: {}", none_if_empty(&node.platforms))
                    }
                    _ => none_if_empty(&node.platforms),
                };
                format!("node {} {state}", node.name)
            })
            .collect();
        if nodes.is_empty() {
            "no node".to_string()
        } else {
            nodes.join("; ")
        }
    }

    /// The one-line refusal of a builder that can build none of the routed
    /// platforms: what is wrong and how to fix it. `None` when it can build one.
    pub fn refusal(&self, routes: &[Route]) -> Option<String> {
        if routes.is_empty() || routes.iter().any(|r| r.node.is_some()) {
            return None;
        }
        let wanted: Vec<String> = routes.iter().map(|r| r.platform.to_string()).collect();
        let wanted = wanted.join(",");
        let fix = if self.driver == "docker" {
            // `buildx create --append` cannot add to a docker-driver builder.
            "enable emulation on its engine (docker run --privileged --rm tonistiigi/binfmt --install all, \
             or apt install qemu-user-static) or pick another builder (docker buildx ls)"
                .to_string()
        } else {
            format!(
                "append a node that can (docker buildx create --append --name {} --platform {wanted} ENDPOINT) \
                 or pick another builder (docker buildx ls)",
                self.name
            )
        };
        let inactive = if self.nodes.iter().any(|n| n.error.is_none() && !n.running()) {
            format!(
                "; an inactive node lists only its --platform ones until it boots (docker buildx inspect --bootstrap {})",
                self.name
            )
        } else {
            String::new()
        };
        Some(format!(
            "the buildx builder {:?} (driver {}) can build none of {wanted}: no node lists it ({}){inactive}; \
             buildx would send it to the first node, where its RUN steps fail (exec format error): {fix}",
            self.name,
            self.driver,
            self.describe_nodes()
        ))
    }
}

fn none_if_empty(platforms: &[String]) -> String {
    if platforms.is_empty() {
        "lists no platform".to_string()
    } else {
        platforms.join(", ")
    }
}

/// Parses what `docker buildx inspect [NAME]` printed.
pub fn parse(text: &str) -> Result<Builder> {
    let mut builder = Builder {
        name: String::new(),
        driver: String::new(),
        error: None,
        nodes: Vec::new(),
    };
    let mut in_nodes = false;
    for line in text.lines() {
        // Indented lines belong to a section (labels, devices, GC policy, files).
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        if key == "Nodes" {
            in_nodes = true;
            continue;
        }
        if in_nodes && key == "Name" {
            builder.nodes.push(node(value));
            continue;
        }
        match key {
            "Name" if builder.name.is_empty() => builder.name = value,
            "Driver" if builder.driver.is_empty() => builder.driver = value,
            "Error" if !in_nodes => builder.error = Some(value),
            "Endpoint" | "Status" | "Error" | "Platforms" => {
                if builder.nodes.is_empty() {
                    // A text without `Nodes:` (older or abridged): one node, the builder's own.
                    builder.nodes.push(node(builder.name.clone()));
                }
                if let Some(node) = builder.nodes.last_mut() {
                    field(node, key, value);
                }
            }
            _ => {}
        }
    }
    if builder.name.is_empty() {
        bail!(
            "unexpected `docker buildx inspect` output (no `Name:` line): {:?}",
            text.lines().next().unwrap_or("nothing")
        );
    }
    Ok(builder)
}

fn node(name: String) -> Node {
    Node {
        name,
        endpoint: String::new(),
        status: None,
        error: None,
        platforms: Vec::new(),
        configured: Vec::new(),
    }
}

fn field(node: &mut Node, key: &str, value: String) {
    match key {
        "Endpoint" => node.endpoint = value,
        "Status" => node.status = Some(value),
        "Error" => node.error = Some(value),
        _ => {
            for platform in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let bare = platform.trim_end_matches('*').to_string();
                if platform.ends_with('*') {
                    node.configured.push(bare.clone());
                }
                node.platforms.push(bare);
            }
        }
    }
}

/// A captured (or, `fleet`, constructed) `buildx inspect` text of tests/fixtures.
#[cfg(test)]
fn inspect_fixture(name: &str) -> Builder {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/buildx-inspect")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

/// `linux/ARCH` of each of `arches`.
#[cfg(test)]
fn linux(arches: &[&str]) -> Vec<Platform> {
    arches.iter().map(|a| Platform::linux(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect(name: &str) -> Builder {
        inspect_fixture(name)
    }

    fn nodes_of(builder: &Builder, routes: &[Route]) -> Vec<Option<String>> {
        routes
            .iter()
            .map(|r| r.node.map(|i| builder.nodes[i].name.clone()))
            .collect()
    }

    #[test]
    fn buildx_0_13_and_0_29_print_the_same_text() {
        for name in ["default", "runner2", "multi-node", "remote-inactive"] {
            assert_eq!(
                inspect(&format!("{name}-0.13.1")),
                inspect(&format!("{name}-0.29.1")),
                "{name}"
            );
        }
    }

    #[test]
    fn every_node_of_a_multi_node_builder_with_its_platforms() {
        let multi = inspect("multi-node-0.13.1");
        assert_eq!(multi.driver, "docker-container");
        assert_eq!(multi.selection(&[]).via, Via::Builder);
        let nodes: Vec<(&str, &str, Option<&str>, Vec<&str>)> = multi
            .nodes
            .iter()
            .map(|n| {
                let platforms = n.platforms.iter().map(String::as_str).collect();
                (
                    n.name.as_str(),
                    n.endpoint.as_str(),
                    n.status.as_deref(),
                    platforms,
                )
            })
            .collect();
        assert_eq!(
            nodes,
            [
                (
                    "bxm-amd",
                    "unix:///var/run/docker.sock",
                    Some("inactive"),
                    vec!["linux/amd64"]
                ),
                (
                    "bxm-arm",
                    "runner2",
                    Some("inactive"),
                    vec!["linux/arm64", "linux/arm/v7"]
                ),
            ]
        );
        assert_eq!(
            multi.nodes[1].configured,
            ["linux/arm64", "linux/arm/v7"],
            "the * marks"
        );
        let routes = multi.route(&linux(&["amd64", "arm64"]));
        assert_eq!(
            nodes_of(&multi, &routes),
            [Some("bxm-amd".into()), Some("bxm-arm".into())]
        );
        assert_eq!(
            multi.platforms(),
            ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        );
    }

    #[test]
    fn sections_and_node_errors_of_the_inspect_format_are_read_right() {
        let fleet = inspect("fleet-constructed");
        let names: Vec<&str> = fleet.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["fleet-amd", "fleet-arm", "fleet-down"],
            "a device's Name: is no node"
        );
        assert_eq!(
            fleet.nodes[0].platforms,
            ["linux/amd64", "linux/amd64/v2", "linux/386"]
        );
        assert_eq!(fleet.nodes[0].configured, ["linux/amd64"]);
        assert_eq!(fleet.nodes[0].native_platform(), Some("linux/amd64/v2"));
        assert_eq!(fleet.nodes[1].endpoint, "tcp://arm.example:1234");
        let down = &fleet.nodes[2];
        assert_eq!(down.status, None);
        assert!(
            down.error.as_deref().unwrap().ends_with("no such host"),
            "{down:?}"
        );
        assert!(!down.running() && down.platforms.is_empty());
        assert_eq!(fleet.error, None);
    }

    #[test]
    fn routes_follow_buildx_configured_platforms_first_then_any_listed_else_none() {
        let fleet = inspect("fleet-constructed");
        // Every platform among some node's --platform ones: those nodes.
        let routes = fleet.route(&linux(&["amd64"]));
        assert_eq!(nodes_of(&fleet, &routes), [Some("fleet-amd".into())]);
        // One is not: every platform goes to the first node listing it at all.
        let routes = fleet.route(&linux(&["amd64", "arm64", "riscv64"]));
        assert_eq!(
            nodes_of(&fleet, &routes),
            [Some("fleet-amd".into()), Some("fleet-arm".into()), None]
        );
        assert_eq!(
            fleet.describe(&routes),
            "linux/amd64 on node fleet-amd (tcp://amd.example:1234), \
             linux/arm64 on node fleet-arm (tcp://arm.example:1234), linux/riscv64 on no node"
        );
        // A configured platform wins over an earlier node that only detected it.
        let mut both = fleet.clone();
        both.nodes[0].platforms.push("linux/arm64".into());
        both.nodes[1].configured = vec!["linux/arm64".into()];
        let routes = both.route(&linux(&["arm64"]));
        assert_eq!(nodes_of(&both, &routes), [Some("fleet-arm".into())]);
        // ...unless another platform has no configured node: then the first listing it.
        let routes = both.route(&linux(&["arm64", "386"]));
        assert_eq!(
            nodes_of(&both, &routes),
            [Some("fleet-amd".into()), Some("fleet-amd".into())]
        );
        // A variant builds its platform; an exact listing is preferred.
        let mut variants = fleet.clone();
        variants.nodes[0].platforms = vec!["linux/amd64/v2".into()];
        variants.nodes[1].platforms = vec!["linux/amd64".into()];
        variants.nodes[0].configured.clear();
        let routes = variants.route(&linux(&["amd64"]));
        assert_eq!(nodes_of(&variants, &routes), [Some("fleet-arm".into())]);
    }

    #[test]
    fn a_builder_that_builds_none_of_the_platforms_is_refused_in_one_line() {
        let fleet = inspect("fleet-constructed");
        let routes = fleet.route(&linux(&["riscv64", "s390x"]));
        let refusal = fleet.refusal(&routes).unwrap();
        assert!(!refusal.contains('\n'));
        for part in [
            "builder \"fleet\" (driver remote) can build none of linux/riscv64,linux/s390x",
            "node fleet-amd linux/amd64, linux/amd64/v2, linux/386",
            "node fleet-down error: Get",
            "exec format error",
            "docker buildx create --append --name fleet --platform linux/riscv64,linux/s390x ENDPOINT",
            "docker buildx ls",
        ] {
            assert!(refusal.contains(part), "{part:?} in {refusal}");
        }
        // One platform it can build is enough here (a release asks for all elsewhere).
        assert_eq!(
            fleet.refusal(&fleet.route(&linux(&["riscv64", "arm64"]))),
            None
        );
        // A docker-driver builder takes no node: emulation, or another builder.
        let runner2 = inspect("runner2-0.13.1");
        let refusal = runner2.refusal(&runner2.route(&linux(&["s390x"]))).unwrap();
        assert!(
            refusal.contains("tonistiigi/binfmt") && !refusal.contains("--append"),
            "{refusal}"
        );
        // Inactive nodes list only their --platform ones: say how to see the rest.
        let remote = inspect("remote-inactive-0.29.1");
        let refusal = remote.refusal(&remote.route(&linux(&["amd64"]))).unwrap();
        assert!(
            refusal.contains("node bxremote0 inactive: lists no platform")
                && refusal.contains("docker buildx inspect --bootstrap bxremote"),
            "{refusal}"
        );
    }

    #[test]
    fn an_abridged_text_and_garbage() {
        let builder = parse(
            "Name: default\nDriver: docker-container\nPlatforms: linux/amd64, linux/arm64*\n",
        )
        .unwrap();
        assert_eq!(builder.nodes.len(), 1);
        assert!(builder.supports(&"linux/arm64".parse().unwrap()));
        assert!(!builder.supports(&"linux/s390x".parse().unwrap()));
        assert!(parse("ERROR: no builder \"x\" found\n").is_err());
        let selection = serde_json::to_value(builder.selection(&[])).unwrap();
        assert_eq!(selection["via"], "builder");
        assert_eq!(selection["builder"], "default");
        let runner2 = serde_json::to_value(inspect("runner2-0.13.1").selection(&[])).unwrap();
        assert_eq!(runner2["via"]["context"], "runner2");
    }
}
