//! Hand-parsed command line. The surface is two subcommands and two flags, and
//! the rules that matter (an explicit `--port` beats `$BEACON_PORT`, a usage
//! error is one line and exit 2) are easier to state here than to coax out of
//! an argument-parsing crate.

use std::slice;

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_HEALTH_PATH: &str = "/healthz";

pub const USAGE: &str = "\
beacon - HTTP service with /healthz and /version

Usage:
  beacon [serve] [--port N]                   serve HTTP on 0.0.0.0:N
  beacon healthcheck [--port N] [--path P]    GET http://127.0.0.1:N/P, exit 0 on 200, else 1
  beacon --version | --help

Options:
  --port N   TCP port (default: $BEACON_PORT, else 8080). `serve --port 0` picks
             a free port and logs it.
  --path P   healthcheck path (default: /healthz)

Environment:
  BEACON_PORT                    default port (see --port)
  BEACON_REVISION, BEACON_VARIANT, BEACON_BUILD_TARGET (ci | production)
                                 reported by GET /version
  RUST_LOG                       log filter, e.g. `debug` or `info,hyper=debug`
                                 (default: info); logs are JSON lines on stdout

Responses carry an x-request-id header (the client's, else a new UUID), also
logged with the request. SIGTERM or SIGINT stops accepting, lets in-flight
requests finish (up to 8 s), then exits 0.

Docker, no shell needed:
  HEALTHCHECK CMD [\"/beacon\", \"healthcheck\"]";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve { port: u16 },
    Healthcheck { port: u16, path: String },
    Version,
    Help,
}

/// Parses `args` (without argv[0]). `env_port` is `$BEACON_PORT`, passed in
/// so that tests need not mutate the process environment.
pub fn parse(args: &[String], env_port: Option<&str>) -> Result<Command, String> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Command::Serve {
            port: default_port(env_port)?,
        });
    };
    match first.as_str() {
        "-h" | "--help" => no_more_args(rest, Command::Help),
        "-V" | "--version" => no_more_args(rest, Command::Version),
        "serve" => parse_options(rest, env_port, false),
        "healthcheck" => parse_options(rest, env_port, true),
        // `beacon --port 9000` is `beacon serve --port 9000`.
        flag if flag.starts_with('-') => parse_options(args, env_port, false),
        other => Err(format!("unknown command '{other}'")),
    }
}

fn no_more_args(rest: &[String], command: Command) -> Result<Command, String> {
    match rest.first() {
        Some(extra) => Err(format!("unexpected argument '{extra}'")),
        None => Ok(command),
    }
}

/// Options of `serve` and (with `healthcheck` set) of `healthcheck`.
fn parse_options(
    args: &[String],
    env_port: Option<&str>,
    healthcheck: bool,
) -> Result<Command, String> {
    let mut port = None;
    let mut path = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // Accept both `--port 80` and `--port=80`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--port" => port = Some(parse_port(take_value(flag, inline, &mut args)?)?),
            "--path" if healthcheck => {
                path = Some(parse_path(take_value(flag, inline, &mut args)?)?)
            }
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    // An explicit --port wins, so a bad $BEACON_PORT only matters when it is used.
    let port = match port {
        Some(port) => port,
        None => default_port(env_port)?,
    };
    Ok(if healthcheck {
        Command::Healthcheck {
            port,
            path: path.unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned()),
        }
    } else {
        Command::Serve { port }
    })
}

fn take_value<'a>(
    flag: &str,
    inline: Option<&'a str>,
    rest: &mut slice::Iter<'a, String>,
) -> Result<&'a str, String> {
    inline
        .or_else(|| rest.next().map(String::as_str))
        .ok_or_else(|| format!("{flag} needs a value"))
}

fn default_port(env_port: Option<&str>) -> Result<u16, String> {
    match env_port {
        Some(value) => parse_port(value).map_err(|e| format!("BEACON_PORT: {e}")),
        None => Ok(DEFAULT_PORT),
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .parse()
        .map_err(|_| format!("invalid port '{value}' (expected 0-65535)"))
}

/// The path goes verbatim into the request line, so it must be one visible-ASCII token.
fn parse_path(value: &str) -> Result<String, String> {
    if value.starts_with('/') && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "invalid path {value:?} (must start with '/', no spaces)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str], env_port: Option<&str>) -> Result<Command, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args, env_port)
    }

    #[test]
    fn no_args_serves_on_default_or_env_port() {
        assert_eq!(parse_strs(&[], None), Ok(Command::Serve { port: 8080 }));
        assert_eq!(
            parse_strs(&[], Some("9000")),
            Ok(Command::Serve { port: 9000 })
        );
        assert_eq!(
            parse_strs(&["serve"], Some("9000")),
            Ok(Command::Serve { port: 9000 })
        );
    }

    #[test]
    fn explicit_port_wins_over_env() {
        let want = Ok(Command::Serve { port: 7000 });
        assert_eq!(parse_strs(&["serve", "--port", "7000"], Some("9000")), want);
        assert_eq!(parse_strs(&["serve", "--port=7000"], Some("bogus")), want);
        assert_eq!(parse_strs(&["--port", "7000"], None), want);
    }

    #[test]
    fn healthcheck_defaults_and_options() {
        assert_eq!(
            parse_strs(&["healthcheck"], None),
            Ok(Command::Healthcheck {
                port: 8080,
                path: "/healthz".into()
            })
        );
        assert_eq!(
            parse_strs(
                &["healthcheck", "--path", "/version", "--port=81"],
                Some("9000")
            ),
            Ok(Command::Healthcheck {
                port: 81,
                path: "/version".into()
            })
        );
    }

    #[test]
    fn version_and_help() {
        assert_eq!(parse_strs(&["--version"], None), Ok(Command::Version));
        assert_eq!(parse_strs(&["-V"], None), Ok(Command::Version));
        assert_eq!(parse_strs(&["--help"], None), Ok(Command::Help));
        assert_eq!(parse_strs(&["healthcheck", "-h"], None), Ok(Command::Help));
    }

    #[test]
    fn bad_input_is_an_error() {
        for args in [
            &["bogus"][..],
            &["serve", "--bogus"],
            &["serve", "--port"],
            &["serve", "--port", "65536"],
            &["serve", "--port", "-1"],
            &["serve", "--path", "/x"], // --path is healthcheck-only
            &["healthcheck", "--path", "healthz"],
            &["healthcheck", "--path", "/a b"],
            &["--version", "extra"],
        ] {
            assert!(parse_strs(args, None).is_err(), "{args:?} should fail");
        }
        assert!(parse_strs(&[], Some("http")).is_err());
        assert!(parse_strs(&["healthcheck"], Some("99999")).is_err());
    }
}
