//! The one way xtask runs another program: print it, run it, fail loudly if it fails.
//!
//! Every subcommand shells out through [`Cmd`], so the log shows each command exactly as it
//! could be pasted into a terminal (`$ cargo clippy ...`), and a failure names the command.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

/// A command line to run: program, arguments, extra environment and working directory.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    display_name: String,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
}

/// What a measured run returns: its captured standard output and its peak memory.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Everything the command wrote to standard output.
    pub stdout: String,
    /// Peak resident set size of the child (and of any children it waited for), in KiB.
    pub max_rss_kib: u64,
}

impl Cmd {
    /// A command running `program`, found through `PATH` if it is a bare name.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let program = program.as_ref().to_os_string();
        let display_name = program.to_string_lossy().into_owned();
        Cmd {
            program,
            display_name,
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
        }
    }

    /// Cargo, from the `CARGO` environment variable that `cargo run` sets, else from `PATH`.
    ///
    /// Using the same cargo that launched xtask keeps the toolchain consistent. The command is
    /// still displayed as `cargo`.
    pub fn cargo() -> Cmd {
        let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Cmd {
            display_name: "cargo".to_string(),
            ..Cmd::new(program)
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Runs the child in `dir` instead of the current directory.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Prints the command, runs it with inherited output, and fails if it exits non-zero.
    pub fn run(&self) -> Result<()> {
        eprintln!("$ {self}");
        let status = self
            .command()
            .status()
            .with_context(|| format!("cannot start `{self}`"))?;
        self.check(status)
    }

    /// Prints the command, runs it, and returns its standard output; stderr passes through.
    pub fn read(&self) -> Result<String> {
        eprintln!("$ {self}");
        let output = self
            .command()
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start `{self}`"))?;
        self.check(output.status)?;
        String::from_utf8(output.stdout).with_context(|| format!("`{self}` printed non-UTF-8"))
    }

    /// Like [`Cmd::read`], and also reports the child's peak resident memory.
    ///
    /// The child is reaped with `wait4`, whose resource usage covers that one process (plus
    /// any grandchildren it waited for), unlike `getrusage(RUSAGE_CHILDREN)`, which keeps the
    /// maximum over every child this process ever had.
    pub fn read_measured(&self) -> Result<Measured> {
        eprintln!("$ {self}");
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{self}`"))?;
        let mut stdout = String::new();
        let read = child
            .stdout
            .take()
            .expect("bug: stdout was configured as piped")
            .read_to_string(&mut stdout);
        let (status, max_rss_kib) =
            wait4(child.id()).with_context(|| format!("cannot wait for `{self}`"))?;
        read.with_context(|| format!("cannot read the output of `{self}`"))?;
        self.check(status)?;
        Ok(Measured {
            stdout,
            max_rss_kib,
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    fn check(&self, status: ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        match status.code() {
            Some(code) => bail!("`{self}` failed with exit code {code}"),
            None => bail!("`{self}` was killed by {status}"),
        }
    }
}

impl fmt::Display for Cmd {
    /// Shell-like: `KEY=value program args`, quoting any word a shell would split.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{}={} ", key.to_string_lossy(), quote(value))?;
        }
        write!(f, "{}", quote(OsStr::new(&self.display_name)))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word for display if a shell would not read it back as one word.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Reaps child `pid` and returns its exit status and peak resident set size in KiB.
fn wait4(pid: u32) -> std::io::Result<(ExitStatus, u64)> {
    let pid = libc::pid_t::try_from(pid).expect("bug: process id does not fit pid_t");
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the types wait4 expects, and `pid` is a
        // child of this process that nothing else reaps (the `Child` handle is never waited).
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    // On Linux `ru_maxrss` is in KiB.
    let max_rss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok((ExitStatus::from_raw(status), max_rss_kib))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_words_with_spaces_and_shows_env() {
        let cmd = Cmd::new("cargo").env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--workspace",
            "--no-deps",
        ]);

        let shown = cmd.to_string();

        assert_eq!(
            shown,
            "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps"
        );
    }

    #[test]
    fn cargo_is_displayed_as_cargo_whatever_its_path() {
        let shown = Cmd::cargo().arg("fmt").to_string();

        assert_eq!(shown, "cargo fmt");
    }

    #[test]
    fn failure_names_the_command_and_exit_code() {
        let cmd = Cmd::new("sh").args(["-c", "exit 3"]);

        let err = cmd.run().unwrap_err();

        assert_eq!(err.to_string(), "`sh -c 'exit 3'` failed with exit code 3");
    }

    #[test]
    fn read_returns_stdout() {
        let out = Cmd::new("sh").args(["-c", "echo hello"]).read().unwrap();

        assert_eq!(out, "hello\n");
    }

    #[test]
    fn read_measured_reports_output_and_nonzero_peak_memory() {
        let cmd = Cmd::new("sh").args(["-c", "echo measured"]);

        let measured = cmd.read_measured().unwrap();

        assert_eq!(measured.stdout, "measured\n");
        assert!(measured.max_rss_kib > 0);
    }

    #[test]
    fn read_measured_fails_on_nonzero_exit() {
        let cmd = Cmd::new("sh").args(["-c", "exit 2"]);

        let err = cmd.read_measured().unwrap_err();

        assert!(err.to_string().contains("exit code 2"), "{err}");
    }
}
