//! `shopbridge mapping get|set`: field mappings are part of the design (listings and orders will own mapping
//! templates), but no service in this deployment serves them yet. The command exists so scripts and muscle memory
//! find it, and says so plainly (exit code 8) instead of pretending.

use crate::{
    cli::MappingCommand,
    error::{CliError, Exit},
    names::OperationArg,
};

pub async fn run(ctx: &crate::client::Ctx, cmd: MappingCommand) -> Result<Exit, CliError> {
    match &cmd {
        MappingCommand::Get { operation, channel } if *operation == OperationArg::GetOrders => {
            return super::orders::mapping_get(ctx, channel).await;
        }
        MappingCommand::Set {
            operation,
            channel,
            file,
        } if *operation == OperationArg::GetOrders => {
            return super::orders::mapping_set(ctx, channel, file).await;
        }
        _ => {}
    }
    let (operation, verb) = match cmd {
        MappingCommand::Get { operation, .. } => (operation, "read"),
        MappingCommand::Set { operation, .. } => (operation, "changed"),
    };
    Err(CliError::not_available(format!(
        "mappings are not available in this deployment: no service serves the {} mapping yet (only get-orders has \
         one), so nothing was {verb}; the import uses its built-in field mapping (see `shopbridge settings get \
         import-listings --channel C`)",
        operation.name()
    )))
}
