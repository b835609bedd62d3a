//! Subject and resource names. Every subject and every stream, consumer and bucket name is derived here, from the
//! message type and an optional namespace, so nothing else builds subjects by string concatenation.

use prost::Name;

/// An optional prefix that lets several deployments (or every test) share one NATS server:
/// subjects become `<ns>.events...` and streams, consumers and buckets `<NS>_EVENTS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(Option<String>);

impl Namespace {
    /// `name` must be a single subject token of letters, digits, `-` or `_`; empty means none.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        if name.is_empty() {
            return Ok(Self(None));
        }
        anyhow::ensure!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "configuration key `nats.namespace`: `{name}` may hold only letters, digits, `-` and `_`"
        );
        Ok(Self(Some(name.to_string())))
    }

    /// A fresh namespace for one test, so the whole suite can share one NATS server in parallel.
    pub fn unique_for_test() -> Self {
        Self(Some(format!(
            "t{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )))
    }

    pub fn subject(&self, subject: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{ns}.{subject}"),
            None => subject.to_string(),
        }
    }

    /// A stream, consumer or bucket name.
    pub fn resource(&self, name: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{}_{name}", ns.to_uppercase()),
            None => name.to_string(),
        }
    }

    /// Removes the namespace from a subject received from NATS.
    pub fn strip<'a>(&self, subject: &'a str) -> &'a str {
        match &self.0 {
            Some(ns) => subject
                .strip_prefix(ns.as_str())
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or(subject),
            None => subject,
        }
    }
}

/// `shopbridge.auth.v1.ChannelStateChanged` -> `events.auth.v1.ChannelStateChanged`.
pub fn event_subject<M: Name>() -> String {
    let package = M::PACKAGE.strip_prefix("shopbridge.").unwrap_or(M::PACKAGE);
    format!("events.{package}.{}", M::NAME)
}

/// How many partitions the gateway's command stream has (`partitions` of the gateway consumers in
/// `deploy/nats/topology.yaml`; a test keeps the two equal).
pub const GATEWAY_PARTITIONS: u32 = 16;

/// The gateway's command subject for a shop and lane: `gateway.cmd.p07.sync.<MessageName>`. The partition comes
/// from the shop domain, so one shop's commands always land on one partition (and one gateway replica); each lane
/// has a consumer of its own, so urgent work never queues behind a bulk backlog.
pub fn command_subject<M: Name>(shop_domain: &str, lane: &str) -> String {
    let partition = partition_token(partition_for(shop_domain, GATEWAY_PARTITIONS));
    format!("gateway.cmd.{partition}.{lane}.{}", M::NAME)
}

pub fn partition_token(partition: u32) -> String {
    format!("p{partition:02}")
}

/// A stable partition (FNV-1a, not the std hasher, whose output may change between Rust releases).
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.to_ascii_lowercase().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopbridge_proto::platform::Probe;

    #[test]
    fn event_subjects_follow_the_package() {
        assert_eq!(event_subject::<Probe>(), "events.platform.v1.Probe");
    }

    #[test]
    fn namespaces_prefix_subjects_and_resources() {
        let ns = Namespace::new("staging").unwrap();
        assert_eq!(ns.subject("events.x"), "staging.events.x");
        assert_eq!(ns.resource("EVENTS"), "STAGING_EVENTS");
        assert_eq!(ns.strip("staging.events.x"), "events.x");
        assert!(Namespace::new("a.b").is_err());
        assert_eq!(Namespace::new("").unwrap().subject("x"), "x");
    }

    #[test]
    fn partitions_are_stable_and_case_insensitive() {
        assert_eq!(
            partition_for("shop-a.myshopify.com", 16),
            partition_for("SHOP-A.myshopify.com", 16)
        );
        // FNV-1a 64 of the domain, mod 16 (computed independently: a change here re-partitions every shop).
        assert_eq!(partition_for("shop-a.myshopify.com", 16), 2);
        let used: std::collections::HashSet<u32> = (0..200)
            .map(|i| partition_for(&format!("s{i}"), 16))
            .collect();
        assert_eq!(used.len(), 16);
        assert_eq!(
            command_subject::<Probe>("shop-a.myshopify.com", "orders"),
            "gateway.cmd.p02.orders.Probe"
        );
    }
}
