//! Where the spec comes from: the command line, a file, the environment, or the kernel command
//! line, in that order (the first source present wins, and a bad one is an error rather than a
//! reason to look further: a spec the harness sent must never be silently replaced).

use std::ffi::OsString;

use super::AgentError;
use crate::protocol::{cmdline_value, decode_spec, SPEC_CMDLINE_KEY, SPEC_ENV};
use crate::spec::WorkloadSpec;

/// The agent's parsed arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// `--spec B64`.
    pub spec: Option<String>,
    /// `--spec-file PATH`.
    pub spec_file: Option<String>,
    /// `--help` / `-h`.
    pub help: bool,
    /// Arguments not understood (an error, except as PID 1 where the kernel passes its leftovers).
    pub unknown: Vec<String>,
}

/// Parses the arguments after the program name; `--opt value` and `--opt=value` both work.
pub fn parse_args(raw: &[OsString]) -> Result<Args, AgentError> {
    let mut args = Args::default();
    let mut it = raw.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--help" | "-h" => args.help = true,
            "--spec" => {
                args.spec = Some(
                    inline
                        .or_else(|| it.next())
                        .ok_or(AgentError::MissingValue("--spec"))?,
                )
            }
            "--spec-file" => {
                args.spec_file = Some(
                    inline
                        .or_else(|| it.next())
                        .ok_or(AgentError::MissingValue("--spec-file"))?,
                )
            }
            _ => args.unknown.push(arg),
        }
    }
    Ok(args)
}

/// Finds and decodes the spec from the process's real environment.
pub fn find_spec(args: &Args, pid1: bool) -> Result<WorkloadSpec, AgentError> {
    let env = std::env::var(SPEC_ENV).ok();
    // The protocol reads the kernel command line only as PID 1: natively it is the host's, and
    // never meant for us.
    let cmdline = if pid1 {
        std::fs::read_to_string("/proc/cmdline").ok()
    } else {
        None
    };
    find_spec_in(args, env.as_deref(), cmdline.as_deref())
}

/// The lookup itself, with the environment and kernel command line passed in (testable).
pub fn find_spec_in(
    args: &Args,
    env: Option<&str>,
    cmdline: Option<&str>,
) -> Result<WorkloadSpec, AgentError> {
    let decode = |origin: &'static str, text: &str| {
        decode_spec(text).map_err(|source| AgentError::BadSpec { origin, source })
    };
    if let Some(text) = &args.spec {
        return decode("--spec", text);
    }
    if let Some(path) = &args.spec_file {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::SpecFile {
            path: path.clone(),
            source,
        })?;
        return decode("--spec-file", &text);
    }
    if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
        return decode("the ISOLAB_SPEC environment variable", text);
    }
    if let Some(text) = cmdline.and_then(|c| cmdline_value(c, SPEC_CMDLINE_KEY)) {
        return decode("isolab.spec= on the kernel command line", text);
    }
    Err(AgentError::NoSpec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_spec;
    use crate::spec::Workload;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn enc(kind: &str) -> String {
        encode_spec(&WorkloadSpec::new(Workload::default_of_kind(kind).unwrap())).unwrap()
    }

    #[test]
    fn arguments_parse_in_both_forms() {
        let a = parse_args(&os(&["--spec", "abc", "--spec-file=/x", "-h", "quiet"])).unwrap();
        assert_eq!(
            a,
            Args {
                spec: Some("abc".into()),
                spec_file: Some("/x".into()),
                help: true,
                unknown: vec!["quiet".into()],
            }
        );
        assert_eq!(
            parse_args(&os(&["--spec=a=b"])).unwrap().spec.as_deref(),
            Some("a=b")
        );
        assert!(matches!(
            parse_args(&os(&["--spec"])),
            Err(AgentError::MissingValue("--spec"))
        ));
    }

    #[test]
    fn sources_are_taken_in_protocol_order() {
        let cmdline = format!("console=ttyS0 isolab.spec={}", enc("timer"));
        let kind = |args: &Args, env: Option<&str>| {
            find_spec_in(args, env, Some(&cmdline))
                .unwrap()
                .workload
                .kind()
        };
        let arg = Args {
            spec: Some(enc("cpu")),
            ..Args::default()
        };
        assert_eq!(kind(&arg, Some(&enc("noop"))), "cpu");
        assert_eq!(kind(&Args::default(), Some(&enc("noop"))), "noop");
        assert_eq!(kind(&Args::default(), None), "timer");
        assert!(matches!(
            find_spec_in(&Args::default(), None, Some("console=ttyS0")),
            Err(AgentError::NoSpec)
        ));
    }

    #[test]
    fn spec_file_is_read_and_a_missing_one_is_named() {
        let path = std::env::temp_dir().join(format!("isolab-spec-test-{}", std::process::id()));
        std::fs::write(&path, format!("{}\n", enc("syscall"))).unwrap();
        let args = Args {
            spec_file: Some(path.display().to_string()),
            ..Args::default()
        };
        let kind = find_spec_in(&args, None, None).map(|s| s.workload.kind());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(kind.unwrap(), "syscall");
        let err = find_spec_in(&args, None, None).unwrap_err();
        assert!(matches!(err, AgentError::SpecFile { .. }), "{err}");
    }

    #[test]
    fn a_bad_spec_is_an_error_naming_its_origin_not_a_fallthrough() {
        let err = find_spec_in(&Args::default(), Some("!!!"), Some(&enc("noop"))).unwrap_err();
        assert!(err.to_string().contains("ISOLAB_SPEC"), "{err}");
    }
}
