//! The environment as the settings see it: one trait, so settings are read from
//! this process's environment in production and from a table in unit tests.
//! Nothing outside `config/` reads an environment variable (`env_vars`' test
//! holds the sources to that).

/// Where settings' variables come from.
pub trait Lookup {
    /// The value of `name` as set, empty or not; `None` when unset or not UTF-8.
    fn raw(&self, name: &str) -> Option<String>;

    /// The value of `name`, or `None` when it is unset, blank or not UTF-8
    /// (`X=` in a unit file means "not set").
    fn var(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.trim().is_empty())
    }
}

/// This process's environment.
pub struct Process;

impl Lookup for Process {
    fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed table of names and values (unit tests).
pub struct Table<'a>(pub &'a [(&'a str, &'a str)]);

impl Lookup for Table<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }
}

impl<const N: usize> Lookup for [(&str, &str); N] {
    fn raw(&self, name: &str) -> Option<String> {
        Table(self.as_slice()).raw(name)
    }
}

/// `name` parsed as a number that `valid` accepts, `None` when unset, or a
/// configuration error naming the variable, its value and `hint` (what to give).
pub fn number<T: std::str::FromStr>(
    env: &dyn Lookup,
    name: &str,
    valid: impl Fn(&T) -> bool,
    hint: &str,
) -> crate::Result<Option<T>> {
    let Some(v) = env.var(name) else {
        return Ok(None);
    };
    match v.trim().parse::<T>() {
        Ok(n) if valid(&n) => Ok(Some(n)),
        _ => Err(crate::Error::Config(format!("{name}={v:?}: {hint}"))),
    }
}

/// `name` as a yes/no switch (1/0, true/false, yes/no, on/off), `None` when
/// unset, or an error naming the variable.
pub fn switch(env: &dyn Lookup, name: &str) -> crate::Result<Option<bool>> {
    let Some(v) = env.var(name) else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(crate::Error::Config(format!(
            "{name}={v:?}: give true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_raw_keeps_it() {
        // Lower-case names: `env_vars`' test takes upper-case ones for settings.
        let env = [("a", " "), ("b", "x")];
        assert_eq!(env.var("a"), None);
        assert_eq!(env.raw("a").as_deref(), Some(" "));
        assert_eq!(env.var("b").as_deref(), Some("x"));
        assert_eq!(env.var("c"), None);
    }

    #[test]
    fn numbers_and_switches_name_what_is_wrong() {
        let env = [("N", "12"), ("BAD", "twelve"), ("ZERO", "0"), ("S", "Off")];
        let pos = |n: &u32| *n > 0;
        assert_eq!(number(&env, "N", pos, "h").unwrap(), Some(12));
        assert_eq!(number(&env, "UNSET", pos, "h").unwrap(), None);
        let e = number(&env, "BAD", pos, "give a count").unwrap_err();
        assert_eq!(e.to_string(), "configuration: BAD=\"twelve\": give a count");
        assert!(number(&env, "ZERO", pos, "h").is_err());
        assert_eq!(switch(&env, "S").unwrap(), Some(false));
        assert!(switch(&env, "N")
            .unwrap_err()
            .to_string()
            .contains("N=\"12\""));
    }
}
