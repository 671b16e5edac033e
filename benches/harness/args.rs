//! The `--name value` arguments of a benchmark's command line, for the
//! benchmarks of this directory (cargo's own `--bench` is skipped).

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, String>,
    /// The value-less flags given (names without their `--`).
    flags: Vec<String>,
    /// The command line as given, without `--bench`.
    pub shown: Vec<String>,
}

impl Args {
    /// Parses the command line; an argument not in `known` (names without
    /// their `--`), or one without a value, ends the program naming it.
    pub fn parse(known: &[&str]) -> Args {
        Args::parse_with_flags(known, &[])
    }

    /// As [`Args::parse`], with `flags` (names without their `--`) taking
    /// no value, such as `--quick`.
    pub fn parse_with_flags(known: &[&str], flags: &[&str]) -> Args {
        let shown: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        let mut values = HashMap::new();
        let mut given = Vec::new();
        let mut it = shown.iter();
        let all = || -> String {
            let names: Vec<&str> = known.iter().chain(flags).copied().collect();
            format!("--{}", names.join(", --"))
        };
        while let Some(x) = it.next() {
            let name = x.strip_prefix("--").unwrap_or(x);
            if name == "help" || x == "-h" {
                println!("arguments: {} (each but a flag takes a value; the file's header comment says what each does)", all());
                std::process::exit(0);
            }
            if flags.contains(&name) {
                given.push(name.to_string());
                continue;
            }
            if !known.contains(&name) {
                panic!("unknown argument {x} (known: {})", all());
            }
            let v = it.next().unwrap_or_else(|| panic!("{x} needs a value"));
            values.insert(name.to_string(), v.clone());
        }
        Args {
            values,
            flags: given,
            shown,
        }
    }

    /// Whether the flag `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// The value of `--name`, or `default` when absent; a value that does
    /// not parse ends the program naming it.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("--{name} {v}: not a valid value")),
        }
    }

    /// The comma-separated list `--name` gives (`1,16,256`), or `default`
    /// when absent; an element that does not parse ends the program.
    pub fn list<T: FromStr + Clone>(&self, name: &str, default: &[T]) -> Vec<T> {
        self.values
            .get(name)
            .map_or_else(|| default.to_vec(), |v| parse_list(name, v))
    }

    /// The raw value of `--name`, if given.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// The elements of a comma-separated list given as `--name`; one that does
/// not parse ends the program naming it.
pub fn parse_list<T: FromStr>(name: &str, s: &str) -> Vec<T> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("--{name} {s}: {x:?} is not a valid element"))
        })
        .collect()
}
