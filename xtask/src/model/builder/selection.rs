//! The builder a run selected (`--builder NAME`), as the plan holds it.

use serde::{Deserialize, Serialize};

use super::{Builder, Route};

/// The builder the user named (`--builder NAME`) as a run uses it: how
/// its engine commands select it, and which node builds which platform. No
/// selection: the current builder, today's commands. `docker buildx
/// --builder NAME` cannot use a `docker`-driver builder of another docker
/// context ("use `docker --context=NAME buildx`"), so such a builder is
/// selected by its engine instead, for every engine command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub builder: String,
    pub driver: String,
    pub via: Via,
    /// `linux/amd64 on node NAME (ENDPOINT), ...` ([`Builder::describe`]).
    pub routes: String,
}

/// How the engine commands of a run select the builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// A `docker`-driver builder: the engine of this docker context; every
    /// engine command runs as `docker --context CONTEXT ...`.
    Context(String),
    /// A `docker`-driver builder whose endpoint is an address: `docker --host HOST ...`.
    Host(String),
    /// Any other driver: buildx commands run as `docker buildx --builder NAME ...`;
    /// the engine's own commands stay on the current context.
    Builder,
}

impl Selection {
    /// What the preflight and a dry run say of it.
    pub fn describe(&self) -> String {
        let (builder, driver) = (&self.builder, &self.driver);
        let how = match &self.via {
            Via::Context(context) => {
                format!("every engine command runs as `docker --context {context} ...`")
            }
            Via::Host(host) => format!("every engine command runs as `docker --host {host} ...`"),
            Via::Builder => format!("buildx runs as `docker buildx --builder {builder} ...`"),
        };
        format!(
            "builder {builder} (driver {driver}; {how}): {}",
            self.routes
        )
    }
}

impl Builder {
    /// How the commands of a run address this builder, and which node
    /// builds each of its platforms.
    pub fn selection(&self, routes: &[Route]) -> Selection {
        let via = if self.driver != "docker" {
            Via::Builder
        } else {
            let endpoint = self
                .nodes
                .first()
                .map_or_else(|| self.name.clone(), |n| n.endpoint.clone());
            if endpoint.contains("://") {
                Via::Host(endpoint)
            } else {
                Via::Context(endpoint)
            }
        };
        Selection {
            builder: self.name.clone(),
            driver: self.driver.clone(),
            via,
            routes: self.describe(routes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{inspect_fixture as inspect, linux};
    use super::*;

    #[test]
    fn a_docker_driver_builder_is_selected_by_its_engine() {
        let default = inspect("default-0.13.1");
        assert_eq!(
            (default.name.as_str(), default.driver.as_str()),
            ("default", "docker")
        );
        let [node] = default.nodes.as_slice() else {
            panic!("one node: {default:?}")
        };
        assert_eq!(node.endpoint, "default");
        assert!(node.running());
        assert_eq!(
            node.platforms,
            [
                "linux/amd64",
                "linux/amd64/v2",
                "linux/amd64/v3",
                "linux/amd64/v4",
                "linux/arm64"
            ]
        );
        assert!(node.configured.is_empty(), "labels are not platforms");
        assert_eq!(node.native_platform(), Some("linux/amd64"));
        let runner2 = inspect("runner2-0.29.1");
        let routes = runner2.route(&linux(&["amd64", "arm64"]));
        let selection = runner2.selection(&routes);
        assert_eq!(selection.via, Via::Context("runner2".into()));
        assert_eq!(
            selection.describe(),
            "builder runner2 (driver docker; every engine command runs as `docker --context runner2 ...`): \
             linux/amd64 on node runner2 (runner2), linux/arm64 on node runner2 (runner2)"
        );
        assert_eq!(runner2.refusal(&routes), None);
        // An engine named by its address, not a context.
        let mut by_host = runner2.clone();
        by_host.nodes[0].endpoint = "unix:///run/r2.sock".into();
        assert_eq!(
            by_host.selection(&routes).via,
            Via::Host("unix:///run/r2.sock".into())
        );
    }
}
