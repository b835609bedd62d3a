//! The command line: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    error::EXIT_CODES_HELP,
    names::{LevelArg, OperationArg, StatusArg},
    output::Format,
};

const AFTER_HELP: &str = "Configuration: `shopbridge configure` writes the endpoints and the API client's \
    credentials to the config file; SHOPBRIDGE_CLI_AUTH_URL, SHOPBRIDGE_CLI_SCHEDULER_URL, SHOPBRIDGE_CLI_LISTINGS_URL, \
    SHOPBRIDGE_CLI_CLIENT_ID and SHOPBRIDGE_CLI_CLIENT_SECRET override it.\n\n";

#[derive(Debug, Parser)]
#[command(
    name = "shopbridge",
    version,
    about = "Operate Shopbridge: channels, settings, runs and their logs, schedules, listings",
    after_help = format!("{AFTER_HELP}{EXIT_CODES_HELP}"),
)]
pub struct Cli {
    /// The config file [default: $XDG_CONFIG_HOME/shopbridge/cli.toml, else ~/.config/shopbridge/cli.toml]
    #[arg(
        long,
        global = true,
        env = "SHOPBRIDGE_CLI_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Output format: human tables, or JSON for scripts
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set the endpoints and credentials once (writes the config file, mode 0600), and show the configuration
    Configure(ConfigureArgs),
    /// Channels: connected Shopify stores
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Operation settings of a channel, as YAML
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Field mappings of an operation (not available in this deployment yet)
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Run an operation on a channel now; with --wait, follow it to the end
    Run(RunArgs),
    /// Runs, newest first; `runs show RUN`, `runs cancel RUN`
    Runs(RunsArgs),
    /// The log of a run: what went wrong with which item, and what to do about it
    Logs(LogsArgs),
    /// Schedules of operations per channel
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// The catalog: listings, their variants and links to Shopify
    #[command(subcommand)]
    Listings(ListingsCommand),
    /// Orders imported from Shopify: `orders list`, `orders show ORDER`
    #[command(subcommand)]
    Orders(OrdersCommand),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  shopbridge configure --auth-url http://127.0.0.1:50051 --client-id ID \
    --client-secret-stdin < secret.txt\n  shopbridge configure            # show the configuration in effect"
)]
pub struct ConfigureArgs {
    /// auth's gRPC URL, e.g. http://127.0.0.1:50051
    #[arg(long, value_name = "URL")]
    pub auth_url: Option<String>,
    /// The scheduler's gRPC URL, e.g. http://127.0.0.1:50055
    #[arg(long, value_name = "URL")]
    pub scheduler_url: Option<String>,
    /// The listings service's gRPC URL, e.g. http://127.0.0.1:50052
    #[arg(long, value_name = "URL")]
    pub listings_url: Option<String>,
    /// The orders service's gRPC URL, e.g. http://127.0.0.1:50053
    #[arg(long, value_name = "URL")]
    pub orders_url: Option<String>,
    /// The API client's id (from `shopbridge-auth bootstrap-admin` or AdminService.CreateApiClient)
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// The API client's secret (visible in shell history and the process list: prefer --client-secret-stdin)
    #[arg(long, value_name = "SECRET", conflicts_with = "client_secret_stdin")]
    pub client_secret: Option<String>,
    /// Read the API client's secret from standard input
    #[arg(long)]
    pub client_secret_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Create a channel (a store still to connect)
    Add {
        /// A name for the channel, unique in your tenant
        name: String,
    },
    /// Connect a channel with a custom app's Admin API access token
    #[command(
        after_help = "The token is best given on standard input (--token-stdin) or in \
        SHOPBRIDGE_CLI_SHOP_TOKEN; --token TOKEN works too, but leaves it in shell history and the process list.\n\n\
        Example:\n  shopbridge channels connect-token main --shop my-store.myshopify.com --token-stdin \
        --scopes read_products,write_products < token.txt"
    )]
    ConnectToken {
        /// The channel: its name or id
        channel: String,
        /// The store, e.g. my-store.myshopify.com
        #[arg(long, value_name = "STORE")]
        shop: String,
        /// Read the access token from standard input (recommended)
        #[arg(long, conflicts_with = "token")]
        token_stdin: bool,
        /// The access token
        #[arg(
            long,
            env = "SHOPBRIDGE_CLI_SHOP_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: Option<String>,
        /// The scopes granted to the custom app, comma-separated
        #[arg(long, value_delimiter = ',', value_name = "SCOPES")]
        scopes: Vec<String>,
    },
    /// Connect a channel through Shopify's OAuth grant screen: prints the URL to open
    ConnectOauth {
        /// The channel: its name or id
        channel: String,
        /// The store, e.g. my-store.myshopify.com
        #[arg(long, value_name = "STORE")]
        shop: String,
    },
    /// List your channels
    List,
    /// Show one channel
    Show {
        /// The channel: its name or id
        channel: String,
    },
    /// Disconnect a channel (its Shopify credentials are deleted)
    Disconnect {
        /// The channel: its name or id
        channel: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Print an operation's settings as YAML (feed it back to `settings set`)
    Get {
        operation: OperationArg,
        /// The channel: its name or id
        #[arg(long)]
        channel: String,
    },
    /// Change an operation's settings from a YAML file; keys left out keep their value
    #[command(
        after_help = "import-listings settings (YAML):\n  enabled: true\n  mode: create_only            \
        # or create_and_overwrite\n  master_sku_field: sku        # or barcode\n  pause_new_listings: false\n\n\
        Example:\n  shopbridge settings set import-listings --channel main -f import.yaml"
    )]
    Set {
        operation: OperationArg,
        /// The channel: its name or id
        #[arg(long)]
        channel: String,
        /// The YAML file, `-` for standard input
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Print an operation's field mapping
    Get {
        operation: OperationArg,
        #[arg(long)]
        channel: String,
    },
    /// Change an operation's field mapping from a YAML file
    Set {
        operation: OperationArg,
        #[arg(long)]
        channel: String,
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes of `run --wait`: 0 succeeded, 5 partial, 4 failed, cancelled or skipped.\n\n\
    Example:\n  shopbridge run import-listings --channel main --wait"
)]
pub struct RunArgs {
    pub operation: OperationArg,
    /// The channel: its name or id
    #[arg(long)]
    pub channel: String,
    /// Follow the run with a progress bar until it finishes; the exit code tells how it ended
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    #[command(flatten)]
    pub list: RunsListArgs,
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    /// Only this channel's runs (name or id)
    #[arg(long)]
    pub channel: Option<String>,
    /// Only runs of this operation
    #[arg(long)]
    pub operation: Option<OperationArg>,
    /// Only runs in these statuses (repeat or comma-separate)
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<StatusArg>,
    /// At most this many runs
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Show one run
    Show { run: String },
    /// Ask a run to stop (the owning service stops at the next safe point)
    Cancel { run: String },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run id
    pub run: String,
    /// Only entries at or above this level
    #[arg(long)]
    pub level: Option<LevelArg>,
    /// At most this many entries (oldest first)
    #[arg(long, default_value_t = 500)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Set when an operation runs on a channel
    #[command(
        after_help = "Examples:\n  shopbridge schedule set --channel main --operation sync-listings \
        --every 15m\n  shopbridge schedule set --channel main --operation get-orders --cron \"0 */2 * * *\" \
        --tz Europe/Berlin\n  shopbridge schedule set --channel main --operation sync-listings --disable"
    )]
    Set(ScheduleSetArgs),
    /// Show schedules
    Show {
        /// Only this channel's schedules (name or id)
        #[arg(long)]
        channel: Option<String>,
        /// Only this operation's schedule
        #[arg(long)]
        operation: Option<OperationArg>,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleSetArgs {
    /// The channel: its name or id
    #[arg(long)]
    pub channel: String,
    #[arg(long)]
    pub operation: OperationArg,
    /// Run at this interval: 90s, 15m, 2h, 1d (or seconds)
    #[arg(long, value_name = "INTERVAL", conflicts_with = "cron")]
    pub every: Option<String>,
    /// Run at the times of a cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first
    #[arg(long, value_name = "EXPRESSION")]
    pub cron: Option<String>,
    /// The IANA time zone of --cron, e.g. Europe/Berlin [default: UTC]
    #[arg(long, value_name = "ZONE", requires = "cron")]
    pub tz: Option<String>,
    /// Keep the schedule but stop it firing (without --every/--cron the timing stays as it is)
    #[arg(long)]
    pub disable: bool,
}

#[derive(Debug, Subcommand)]
pub enum ListingsCommand {
    /// List listings that match every filter given
    List(ListingsListArgs),
    /// Show one listing with its variants
    Show { id: String },
    /// Unpause paused listings: by id, or every listing an import run created
    Unpause {
        /// Listing ids, comma-separated
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "run",
            conflicts_with = "run"
        )]
        ids: Vec<String>,
        /// The import run that created them
        #[arg(long)]
        run: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListingsListArgs {
    /// A variant SKU
    #[arg(long)]
    pub sku: Option<String>,
    #[arg(long, value_enum)]
    pub status: Option<ListingStatusArg>,
    /// Words in the title, brand or a SKU
    #[arg(long)]
    pub text: Option<String>,
    /// Created by this import run
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Only listings linked to Shopify (on --channel, if given)
    #[arg(long, conflicts_with = "unlinked")]
    pub linked: bool,
    /// Only listings not linked to Shopify (on --channel, if given)
    #[arg(long)]
    pub unlinked: bool,
    /// With --linked/--unlinked: on this channel (name or id)
    #[arg(long)]
    pub channel: Option<String>,
    /// At most this many listings
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListingStatusArg {
    Active,
    Paused,
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// List orders that match every filter given, oldest import first
    List(OrdersListArgs),
    /// Show one order with its lines, addresses and import history
    Show {
        /// Our order id, or a Shopify order GID (gid://shopify/Order/<id>) with --channel
        id: String,
        /// The channel (name or id), with a Shopify GID
        #[arg(long)]
        channel: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct OrdersListArgs {
    /// The channel: its name or id
    #[arg(long)]
    pub channel: Option<String>,
    /// Shopify's fulfillment status, e.g. unfulfilled, partially_fulfilled, fulfilled
    #[arg(long)]
    pub status: Option<String>,
    /// Shopify's financial status, e.g. paid, pending, authorized
    #[arg(long)]
    pub financial: Option<String>,
    /// Words in the order's name or a line's SKU
    #[arg(long)]
    pub text: Option<String>,
    /// Imported at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// At most this many orders
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn runs_takes_filters_or_a_subcommand() {
        let cli =
            Cli::try_parse_from(["shopbridge", "runs", "--status", "failed,partial"]).unwrap();
        let Command::Runs(runs) = cli.command else {
            panic!("runs")
        };
        assert!(runs.command.is_none());
        assert_eq!(
            runs.list.status,
            vec![StatusArg::Failed, StatusArg::Partial]
        );
        let cli = Cli::try_parse_from(["shopbridge", "runs", "show", "r1", "-o", "json"]).unwrap();
        assert_eq!(cli.output, Format::Json);
        assert!(matches!(
            cli.command,
            Command::Runs(RunsArgs {
                command: Some(RunsCommand::Show { .. }),
                ..
            })
        ));
    }
}
