//! `shopbridge channels ...`: the tenant's channels in auth. A channel is named on the command line by its name
//! (unique in the tenant) or its id.

use serde::Serialize;
use shopbridge_proto::auth::{self as pb, ChannelState};
use uuid::Uuid;

use crate::{
    cli::ChannelsCommand,
    client::Ctx,
    error::{CallExt, CliError, Exit},
    output::{self, or_dash},
};

const LIST_HINT: &str = "see your channels with `shopbridge channels list`";

/// A channel as the CLI prints it; the JSON field names are stable.
#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub channel_id: String,
    pub name: String,
    pub state: String,
    pub shop_domain: Option<String>,
    pub shop_name: Option<String>,
    pub plan: Option<String>,
    pub granted_scopes: Vec<String>,
    pub last_error: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn state_name(value: i32) -> String {
    match ChannelState::try_from(value) {
        Ok(ChannelState::Connecting) => "connecting".into(),
        Ok(ChannelState::Active) => "active".into(),
        Ok(ChannelState::Disconnected) => "disconnected".into(),
        Ok(ChannelState::Error) => "error".into(),
        _ => format!("unknown({value})"),
    }
}

impl From<pb::Channel> for ChannelView {
    fn from(c: pb::Channel) -> Self {
        Self {
            created_at: output::rfc3339(c.created_at.as_ref()),
            updated_at: output::rfc3339(c.updated_at.as_ref()),
            channel_id: c.channel_id,
            name: c.name,
            state: state_name(c.state),
            shop_domain: non_empty(c.shop_domain),
            shop_name: non_empty(c.shop_name),
            plan: non_empty(c.plan),
            granted_scopes: c.granted_scopes,
            last_error: non_empty(c.last_error),
        }
    }
}

pub async fn run(ctx: &Ctx, cmd: ChannelsCommand) -> Result<Exit, CliError> {
    match cmd {
        ChannelsCommand::Add { name } => {
            let created = ctx
                .channels()
                .await?
                .create_channel(pb::CreateChannelRequest { name })
                .await
                .or_fail(&ctx.auth)?;
            let channel = required(created.channel)?;
            if !ctx.json() {
                eprintln!(
                    "created channel `{}`; connect it with `shopbridge channels connect-token {} --shop \
                     STORE.myshopify.com --token-stdin` or `shopbridge channels connect-oauth {} --shop STORE`",
                    channel.name, channel.name, channel.name
                );
            }
            print_channel(ctx, channel)
        }
        ChannelsCommand::ConnectToken {
            channel,
            shop,
            token_stdin,
            token,
            scopes,
        } => {
            let access_token = if token_stdin {
                super::read_stdin("the access token")?.trim().to_string()
            } else {
                token.unwrap_or_default().trim().to_string()
            };
            if access_token.is_empty() {
                return Err(CliError::usage(
                    "no access token given: pipe it in with --token-stdin (recommended), set \
                     SHOPBRIDGE_CLI_SHOP_TOKEN, or pass --token TOKEN",
                ));
            }
            let channel_id = resolve(ctx, &channel).await?.channel_id;
            let connected = ctx
                .channels()
                .await?
                .connect_with_token(pb::ConnectWithTokenRequest {
                    channel_id,
                    shop_domain: shop,
                    access_token,
                    granted_scopes: scopes
                        .into_iter()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                })
                .await
                .or_fail(&ctx.auth)?;
            print_channel(ctx, required(connected.channel)?)
        }
        ChannelsCommand::ConnectOauth { channel, shop } => {
            let channel_id = resolve(ctx, &channel).await?.channel_id;
            let begun = ctx
                .channels()
                .await?
                .begin_o_auth(pb::BeginOAuthRequest {
                    channel_id: channel_id.clone(),
                    shop_domain: shop,
                })
                .await
                .or_fail(&ctx.auth)?;
            let view = OAuthView {
                channel_id,
                shop_domain: begun.shop_domain,
                expires_at: output::rfc3339(begun.expires_at.as_ref()),
                authorize_url: begun.authorize_url,
            };
            if ctx.json() {
                output::json(&view)?;
            } else {
                eprintln!(
                    "open this URL in a browser signed in to {} and approve the app (before {}); the channel \
                     becomes active then (check with `shopbridge channels show {channel}`):",
                    view.shop_domain,
                    output::human_time(view.expires_at.as_deref())
                );
                output::print_line(&view.authorize_url)?;
            }
            Ok(Exit::Ok)
        }
        ChannelsCommand::List => {
            let channels = list(ctx).await?;
            if ctx.json() {
                let views: Vec<ChannelView> = channels.into_iter().map(Into::into).collect();
                output::json(&views)?;
            } else if channels.is_empty() {
                eprintln!("no channels yet: add one with `shopbridge channels add NAME`");
            } else {
                let rows = channels
                    .into_iter()
                    .map(ChannelView::from)
                    .map(|c| {
                        vec![
                            c.name,
                            c.state,
                            or_dash(c.shop_domain.as_deref().unwrap_or_default()),
                            or_dash(c.plan.as_deref().unwrap_or_default()),
                            c.channel_id,
                        ]
                    })
                    .collect();
                output::table(&["name", "state", "shop", "plan", "id"], rows)?;
            }
            Ok(Exit::Ok)
        }
        ChannelsCommand::Show { channel } => {
            let channel = resolve(ctx, &channel).await?;
            print_channel(ctx, channel)
        }
        ChannelsCommand::Disconnect { channel } => {
            let channel_id = resolve(ctx, &channel).await?.channel_id;
            let disconnected = ctx
                .channels()
                .await?
                .disconnect_channel(pb::DisconnectChannelRequest { channel_id })
                .await
                .or_fail(&ctx.auth)?;
            print_channel(ctx, required(disconnected.channel)?)
        }
    }
}

#[derive(Serialize)]
struct OAuthView {
    channel_id: String,
    shop_domain: String,
    authorize_url: String,
    expires_at: Option<String>,
}

fn print_channel(ctx: &Ctx, channel: pb::Channel) -> Result<Exit, CliError> {
    let view = ChannelView::from(channel);
    if ctx.json() {
        output::json(&view)?;
    } else {
        let opt = |v: &Option<String>| or_dash(v.as_deref().unwrap_or_default());
        output::fields(&[
            ("name", view.name.clone()),
            ("id", view.channel_id.clone()),
            ("state", view.state.clone()),
            ("shop", opt(&view.shop_domain)),
            ("shop name", opt(&view.shop_name)),
            ("plan", opt(&view.plan)),
            ("scopes", or_dash(&view.granted_scopes.join(", "))),
            ("last error", opt(&view.last_error)),
            ("created", output::human_time(view.created_at.as_deref())),
            ("updated", output::human_time(view.updated_at.as_deref())),
        ])?;
    }
    Ok(Exit::Ok)
}

fn required(channel: Option<pb::Channel>) -> Result<pb::Channel, CliError> {
    channel.ok_or_else(|| CliError::other("auth answered without the channel"))
}

pub async fn list(ctx: &Ctx) -> Result<Vec<pb::Channel>, CliError> {
    Ok(ctx
        .channels()
        .await?
        .list_channels(pb::ListChannelsRequest {})
        .await
        .or_fail(&ctx.auth)?
        .channels)
}

/// The channel named `arg`: by id if it is a UUID, else by name.
pub async fn resolve(ctx: &Ctx, arg: &str) -> Result<pb::Channel, CliError> {
    if Uuid::parse_str(arg).is_ok() {
        let got = ctx
            .channels()
            .await?
            .get_channel(pb::GetChannelRequest {
                channel_id: arg.to_string(),
            })
            .await
            .or_fail(&ctx.auth)
            .map_err(|e| e.with_hint(Exit::NotFound, LIST_HINT))?;
        return required(got.channel);
    }
    list(ctx)
        .await?
        .into_iter()
        .find(|c| c.name == arg)
        .ok_or_else(|| CliError::not_found(format!("no channel named `{arg}`; {LIST_HINT}")))
}

/// The id of the channel named `arg`, for calls to other services: a UUID is taken as it is (that service answers
/// NOT_FOUND for a channel that is not the tenant's), a name is looked up in auth.
pub async fn resolve_id(ctx: &Ctx, arg: &str) -> Result<String, CliError> {
    if Uuid::parse_str(arg).is_ok() {
        return Ok(arg.to_string());
    }
    Ok(resolve(ctx, arg).await?.channel_id)
}

/// Channel names by id, for tables; empty if auth cannot be asked (the tables then show ids).
pub async fn names_by_id(ctx: &Ctx) -> std::collections::HashMap<String, String> {
    match list(ctx).await {
        Ok(channels) => channels
            .into_iter()
            .map(|c| (c.channel_id, c.name))
            .collect(),
        Err(_) => Default::default(),
    }
}
