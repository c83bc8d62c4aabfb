//! The `command` process driver: any program, its output in `LOG_DIR/NAME.log`, stopped with
//! SIGTERM and, if it lingers, SIGKILL.

use super::driver::{DriverError, Process, RunContext};
use super::spec::ProcessSpec;
use async_trait::async_trait;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a process has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A program started from a spec's `command` and `args`.
pub struct CommandProcess {
    name: String,
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    child: Option<Child>,
}

impl CommandProcess {
    /// From a spec whose `command` holds the program and its arguments (`args` follow them).
    pub fn from_spec(spec: &ProcessSpec) -> Result<Self, DriverError> {
        let Some((program, rest)) = spec.command.split_first() else {
            return Err(DriverError::failed(&spec.name, "`command` is empty"));
        };
        let mut args = rest.to_vec();
        args.extend(spec.args.iter().cloned());
        Ok(Self::new(&spec.name, program, args, spec.env.clone()))
    }

    /// `program args...` with extra environment `env`, called `name` in logs and errors.
    pub fn new(
        name: &str,
        program: &str,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name: name.to_string(),
            program: program.to_string(),
            args,
            env,
            child: None,
        }
    }
}

#[async_trait]
impl Process for CommandProcess {
    async fn start(&mut self, ctx: &RunContext) -> Result<(), DriverError> {
        if self.child.is_some() {
            return Ok(());
        }
        let fail = |m: String| DriverError::failed(&self.name, m);
        std::fs::create_dir_all(&ctx.log_dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", ctx.log_dir.display())))?;
        let log_path = ctx.log_dir.join(format!("{}.log", self.name));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| fail(format!("cannot create {}: {e}", log_path.display())))?;
        let err_log = log
            .try_clone()
            .map_err(|e| fail(format!("cannot share {}: {e}", log_path.display())))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(&self.env)
            .current_dir(&ctx.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            // Never leave a process behind if the harness itself goes away.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start `{}`: {e}", self.program)))?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
                return Ok(());
            }
        }
        child
            .kill()
            .await
            .map_err(|e| DriverError::failed(&self.name, format!("cannot kill: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &std::path::Path) -> RunContext {
        RunContext {
            placement: None,
            dir: dir.to_path_buf(),
            log_dir: dir.join("logs"),
            loadtest_bin: "/nonexistent".into(),
        }
    }

    #[tokio::test]
    async fn a_command_starts_writes_its_log_and_stops_on_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = CommandProcess::new(
            "sleeper",
            "sh",
            vec!["-c".into(), "echo started; exec sleep 30".into()],
            BTreeMap::new(),
        );
        p.start(&ctx(dir.path())).await.unwrap();
        let pid = p.pid().unwrap();
        assert!(crate::procstat::sample(pid).is_ok());
        // Its first line is the signal that it runs.
        let log = dir.path().join("logs/sleeper.log");
        for _ in 0..1000 {
            if std::fs::read_to_string(&log).unwrap() == "started\n" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\n");
        p.stop().await.unwrap();
        assert_eq!(p.pid(), None);
        // Stopping again is harmless.
        p.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = CommandProcess::new("ghost", "/no/such/program", vec![], BTreeMap::new());
        let e = p.start(&ctx(dir.path())).await.unwrap_err().to_string();
        assert!(
            e.starts_with("ghost: cannot start `/no/such/program`"),
            "{e}"
        );
    }
}
