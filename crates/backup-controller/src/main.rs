//! backup-controller: the binary that reconciles Backup, Restore and BackupSchedule.
//!
//! It parses the flags every controller shares and sets up logging. The reconcile loop, leader
//! election and the metrics server come with the controller's own issue; until then it says so
//! and exits cleanly.

use anyhow::Result;
use clap::Parser;
use operator_runtime::CommonFlags;

/// Command line of the backup-controller.
#[derive(Debug, Parser)]
#[command(
    name = "backup-controller",
    version,
    about = "Reconciles Backup, Restore and BackupSchedule of br.pingcap.com/v1alpha1"
)]
struct Cli {
    #[command(flatten)]
    common: CommonFlags,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    operator_runtime::telemetry::init(cli.common.log_format, &cli.common.log_filter)?;
    tracing::warn!(
        lease = cli.common.lease_name_or("backup-controller"),
        "backup-controller has no reconcile loop yet; exiting"
    );
    Ok(())
}
