//! CLI errors and the exit codes they map to (DESIGN.md §5): 0 success,
//! 1 failure, 2 usage, 3 not found, 4 rejected by the exchange or
//! validation, 5 daemon unreachable.

use std::{path::PathBuf, process::ExitCode};

use tonic::{Code, Status};

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon could not be reached.
    #[error(
        "cannot reach virc-daemon ({detail}); looked at {}.\nStart it with `virc-daemon` (or `sudo systemctl start virc`), or point --socket / VIRC_SOCKET (or --endpoint) at it",
        tried.join(", ")
    )]
    Unreachable {
        /// Where we looked.
        tried: Vec<String>,
        /// What went wrong.
        detail: String,
    },
    /// The socket exists but we may not use it.
    #[error("permission denied on {}: add yourself to group virc (sudo usermod -aG virc $USER, then log in again)", .0.display())]
    PermissionDenied(PathBuf),
    /// The daemon answered with an error.
    #[error("{}", status_text(.0))]
    Rpc(Status),
    /// Bad flags or arguments.
    #[error("{0}")]
    Usage(String),
    /// Writing output failed (for example a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

fn status_text(s: &Status) -> String {
    match s.code() {
        Code::Unauthenticated => format!("{} (check --token / VIRC_TOKEN)", s.message()),
        Code::Unimplemented => format!(
            "the daemon does not support this call ({}); upgrade virc-daemon",
            s.message()
        ),
        _ => s.message().to_owned(),
    }
}

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        Self::Rpc(s)
    }
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } | Self::PermissionDenied(_) => 5,
            Self::Usage(_) => 2,
            Self::Output(_) => 1,
            Self::Rpc(s) => match s.code() {
                Code::NotFound => 3,
                Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::AlreadyExists => 4,
                Code::Unavailable => 5,
                _ => 1,
            },
        }
    }

    /// A short machine-readable name for `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::PermissionDenied(_) => "permission_denied",
            Self::Usage(_) => "usage",
            Self::Output(_) => "output",
            Self::Rpc(s) => match s.code() {
                Code::NotFound => "not_found",
                Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::AlreadyExists => "rejected",
                Code::Unavailable => "unavailable",
                Code::Unauthenticated => "unauthenticated",
                Code::ResourceExhausted => "lagged",
                _ => "failed",
            },
        }
    }
}

impl From<&CliError> for ExitCode {
    fn from(e: &CliError) -> Self {
        ExitCode::from(e.exit_code())
    }
}
