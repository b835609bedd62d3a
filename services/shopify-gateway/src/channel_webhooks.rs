//! Webhook subscriptions follow channels. When auth reports a channel ACTIVE (consumer `gateway-channels`), the
//! gateway queues a `RegisterWebhooks` command for the shop on its own work queue, through the outbox in the inbox's
//! transaction, so every connected store delivers `app/uninstalled` (and the other configured topics) without an
//! operator's step. The command id derives from the event's message id: a redelivered event queues the same command,
//! which the stream's duplicate window and the gateway's result store run once; `RegisterWebhooks` itself creates
//! only the missing subscriptions, so reconnecting a store is safe.

use shopbridge_platform::bus::{
    Envelope, EventMeta, Handler, HandlerError, OutboxMessage, names::command_subject, outbox,
};
use shopbridge_proto::{
    auth::{ChannelState, ChannelStateChanged},
    gateway as pb,
};
use sqlx::{Postgres, Transaction};

/// Where Shopify delivers and what it delivers (`service.webhooks.callback_url` and `topics`).
#[derive(Debug, Clone)]
pub struct Subscriptions {
    pub callback_url: String,
    pub topics: Vec<String>,
}

pub struct ChannelWebhooks {
    pub subscriptions: Subscriptions,
}

/// The command a channel's activation queues: `None` for any other state change.
pub fn command_for(
    change: &ChannelStateChanged,
    message_id: &str,
    subscriptions: &Subscriptions,
) -> Option<pb::Command> {
    if change.state != ChannelState::Active as i32 || change.shop_domain.trim().is_empty() {
        return None;
    }
    Some(pb::Command {
        command_id: format!("register-webhooks:{message_id}"),
        shop_domain: change.shop_domain.trim().to_string(),
        channel_id: change.channel_id.clone(),
        lane: pb::Lane::Orders as i32,
        operation: Some(pb::command::Operation::RegisterWebhooks(
            pb::RegisterWebhooks {
                callback_url: subscriptions.callback_url.clone(),
                topics: subscriptions.topics.clone(),
            },
        )),
    })
}

impl Handler for ChannelWebhooks {
    type Message = ChannelStateChanged;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<ChannelStateChanged>,
    ) -> Result<(), HandlerError> {
        let change = &event.message;
        if change.tenant_id.trim().is_empty() || change.channel_id.trim().is_empty() {
            return Err(HandlerError::Reject(anyhow::anyhow!(
                "ChannelStateChanged without tenant_id or channel_id"
            )));
        }
        let Some(command) = command_for(change, &event.message_id, &self.subscriptions) else {
            return Ok(());
        };
        let meta =
            EventMeta::tenant(change.tenant_id.clone()).with_channel(change.channel_id.clone());
        outbox::enqueue(
            tx,
            OutboxMessage::to_subject(
                command_subject::<pb::Command>(&command.shop_domain, "orders"),
                meta,
                &command,
            ),
        )
        .await
        .map_err(|e| HandlerError::Retry(e.into()))?;
        tracing::info!(
            channel_id = %change.channel_id,
            shop = %command.shop_domain,
            topics = ?self.subscriptions.topics,
            "channel active: webhook subscriptions queued"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions() -> Subscriptions {
        Subscriptions {
            callback_url: "https://hooks.example.com/shopify/webhooks".into(),
            topics: vec!["app/uninstalled".into()],
        }
    }

    fn change(state: ChannelState) -> ChannelStateChanged {
        ChannelStateChanged {
            tenant_id: "t".into(),
            channel_id: "c".into(),
            shop_domain: "a.myshopify.com".into(),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn only_an_active_channel_gets_its_webhooks_registered_under_an_id_its_event_fixes() {
        assert!(command_for(&change(ChannelState::Disconnected), "m1", &subscriptions()).is_none());
        let command = command_for(&change(ChannelState::Active), "m1", &subscriptions()).unwrap();
        assert_eq!(command.command_id, "register-webhooks:m1");
        assert_eq!(command.shop_domain, "a.myshopify.com");
        let Some(pb::command::Operation::RegisterWebhooks(register)) = command.operation else {
            panic!("not RegisterWebhooks");
        };
        assert_eq!(register.topics, ["app/uninstalled"]);
        let again = command_for(&change(ChannelState::Active), "m1", &subscriptions()).unwrap();
        assert_eq!(again.command_id, command.command_id);
    }
}
