#!/usr/bin/env bash
# `make demo`: the whole system against the Shopify simulator, driven the way a merchant's operator would, with the
# `shopbridge` CLI. Starts everything (deploy/local/system.sh up), creates a tenant and a channel, connects the
# channel by OAuth through the simulator, runs every channel operation that exists, and prints what happened and
# what to try next. The system stays up for exploring until `make down`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"
STATE="$ROOT/.local/system/state"
BIN="${SHOPBRIDGE_BIN_DIR:-$ROOT/target/debug}"
SHOP="${SHOPBRIDGE_DEMO_SHOP:-demo-store.myshopify.com}"
AUTH_GRPC="${SHOPBRIDGE_DEMO_AUTH_GRPC_PORT:-50051}"
AUTH_HTTP="${SHOPBRIDGE_DEMO_AUTH_HTTP_PORT:-8081}"
LISTINGS_GRPC="${SHOPBRIDGE_DEMO_LISTINGS_GRPC_PORT:-50052}"
ORDERS_GRPC="${SHOPBRIDGE_DEMO_ORDERS_GRPC_PORT:-50053}"
SCHEDULER_GRPC="${SHOPBRIDGE_DEMO_SCHEDULER_GRPC_PORT:-50055}"
SIM_PORT="${SHOPBRIDGE_DEMO_SIM_PORT:-8787}"

CHANNEL_NAME="Demo store"
BIN_REL="${BIN#"$ROOT/"}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

"$SCRIPT_DIR/system.sh" up

# The CLI's settings live with the demo's state, so the demo never touches ~/.config.
export SHOPBRIDGE_CLI_CONFIG="$STATE/cli.toml"
cli() { "$BIN/shopbridge" "$@"; }

step "Tenant 'demo' and its administrator API client"
if [[ ! -s $STATE/admin-client-id ]]; then
    out="$("$SCRIPT_DIR/system.sh" auth bootstrap-admin --tenant demo)"
    (umask 077
        awk '/^client_id:/ {print $2}' <<<"$out" >"$STATE/admin-client-id"
        awk '/^client_secret:/ {print $2}' <<<"$out" >"$STATE/admin-client-secret")
fi
cli configure --auth-url "http://127.0.0.1:$AUTH_GRPC" --scheduler-url "http://127.0.0.1:$SCHEDULER_GRPC" \
    --listings-url "http://127.0.0.1:$LISTINGS_GRPC" --orders-url "http://127.0.0.1:$ORDERS_GRPC" --client-id "$(cat "$STATE/admin-client-id")" \
    --client-secret-stdin <"$STATE/admin-client-secret"

step "Create a Shopify channel"
# `channels show` fails for a channel that does not exist yet: that is the first demo, not an error.
if shown="$(cli channels show "$CHANNEL_NAME" -o json 2>/dev/null)" && [[ -n $shown ]]; then
    channel="$(json 'd["channel_id"]' <<<"$shown")"
    echo "channel '$CHANNEL_NAME' exists already ($channel): connecting it again"
else
    channel="$(cli channels add "$CHANNEL_NAME" -o json | json 'd["channel_id"]')"
    echo "created channel '$CHANNEL_NAME' ($channel)"
fi

step "Connect it by OAuth (the simulator plays Shopify and approves the app at once)"
url="$(cli channels connect-oauth "$channel" --shop "$SHOP" -o json | json 'd["authorize_url"]')"
echo "authorize URL: $url"
# A browser would open the URL; Shopify (the simulator) redirects to auth's callback, which completes the connection.
page="$(curl -fsS -L --max-redirs 3 --resolve "$SHOP:$SIM_PORT:127.0.0.1" "$url")" || die "the OAuth callback failed; see .local/system/logs/auth.log"
grep -o 'Success![^<]*' <<<"$page" || die "the callback did not confirm the connection: $page"
cli channels show "$channel"

step "Webhooks: the active channel's store now delivers app/uninstalled to shopify-gateway"
# The gateway registers them (RegisterWebhooks on its own queue) when auth reports the channel active.
subs_url="http://127.0.0.1:$SIM_PORT/_sim/shops/$SHOP/webhook-subscriptions"
subs=""
for _ in $(seq 1 150); do
    subs="$(curl -fs "$subs_url" 2>/dev/null || true)"
    grep -q APP_UNINSTALLED <<<"$subs" && break
    sleep 0.2
done
grep -q APP_UNINSTALLED <<<"$subs" ||
    die "the gateway registered no app/uninstalled webhook within 30 s; see .local/system/logs/gateway.log"
echo "subscriptions Shopify (the simulator) holds for $SHOP:"
json '"\n".join("  %-20s -> %s" % (s["topic"], s["uri"]) for s in d)' <<<"$subs"

step "Import settings: new listings are created paused, for review"
settings="$STATE/import-settings.yaml"
cat >"$settings" <<'EOF'
enabled: true
mode: create_only
master_sku_field: sku
pause_new_listings: true
EOF
cli settings set import-listings --channel "$channel" -f "$settings"

step "Run Import Listings"
cli run import-listings --channel "$channel" --wait || die "Import Listings did not succeed (exit $?)"
run="$(cli runs --channel "$channel" --operation import-listings --limit 1 -o json | json 'd[0]["run_id"]')"

step "What the run did (its summary is above): warnings in its log, and the listings it created"
cli logs "$run" --level warning || true
created="$(cli listings list --run "$run" -o json | json 'd["total"]')"
echo
echo "listings created by the import (paused for review): $created"
cli listings list --run "$run" --limit 5

step "Get Orders: customers place orders in the store; a run imports them and tags them in Shopify"
# The seeded orders are dated 2025-10, outside any Get Orders window: these are placed now.
for n in 1 2 3 4 5; do
    curl -fsS -X POST "http://127.0.0.1:$SIM_PORT/_sim/shops/$SHOP/orders/custom" -H 'content-type: application/json' \
        -d "{\"lines\": [{\"sku\": \"DEMO-TEE-$n\", \"title\": \"Demo tee $n\", \"quantity\": $n, \"price\": \"19.90\"}],
             \"customer\": {\"first_name\": \"Customer\", \"last_name\": \"$n\", \"email\": \"customer$n@example.com\"},
             \"shipping_lines\": [\"Standard\"]}" >/dev/null || die "the simulator refused a demo order"
done
orders_settings="$STATE/get-orders.yaml"
cat >"$orders_settings" <<'YAML'
enabled: true
fulfillment_statuses: [unfulfilled, partially_fulfilled]
financial_statuses: [any]
tag_after_import: "Received by Shopbridge"
updated_within_days: 14
YAML
cli settings set get-orders --channel "$channel" -f "$orders_settings"
cli run get-orders --channel "$channel" --wait || die "Get Orders did not succeed (exit $?)"
cli orders list --channel "$channel"
imported="$(cli orders list --channel "$channel" -o json | json 'd["total"]')"

step "Real time: an order placed now comes in through its orders/create webhook, without a run"
curl -fsS -X POST "http://127.0.0.1:$SIM_PORT/_sim/shops/$SHOP/orders/custom" -H 'content-type: application/json' \
    -d '{"lines": [{"sku": "DEMO-MUG", "title": "Demo mug", "price": "9.90"}]}' >/dev/null ||
    die "the simulator refused the webhook demo order"
for _ in $(seq 1 100); do
    now_total="$(cli orders list --channel "$channel" -o json | json 'd["total"]')"
    [[ $now_total -gt $imported ]] && break
    sleep 0.2
done
[[ $now_total -gt $imported ]] || die "the webhook order did not arrive within 20 s; see .local/system/logs/orders.log"
echo "orders now: $now_total (one came by webhook)"
imported="$now_total"

cat <<EOF

$(printf '\033[1m')Demo complete.$(printf '\033[0m') The system keeps running until 'make down'.

  What happened: tenant 'demo' got an admin API client; channel '$CHANNEL_NAME' was connected to $SHOP by OAuth
  through the Shopify simulator; Import Listings ($run) pulled the store's catalog through shopify-gateway
  (bulk export, cost budget) into listings: $created listings created, paused. Get Orders imported $imported
  orders placed in the store and tagged them "Received by Shopbridge" in Shopify.

  Try next (in this shell):
    export SHOPBRIDGE_CLI_CONFIG=.local/system/state/cli.toml
    $BIN_REL/shopbridge channels list
    $BIN_REL/shopbridge listings list --status paused
    $BIN_REL/shopbridge listings unpause --run $run
    $BIN_REL/shopbridge schedule set --channel "$CHANNEL_NAME" --operation import-listings --every 15m
    $BIN_REL/shopbridge run import-listings --channel "$CHANNEL_NAME" --wait     # a second run links, creates nothing new
    $BIN_REL/shopbridge runs --channel "$CHANNEL_NAME"
    $BIN_REL/shopbridge orders list --channel "$CHANNEL_NAME"
    $BIN_REL/shopbridge settings get get-orders --channel "$CHANNEL_NAME"
    $BIN_REL/shopbridge mapping get get-orders --channel "$CHANNEL_NAME"
    curl -X POST http://127.0.0.1:$SIM_PORT/_sim/shops/$SHOP/uninstall   # the store uninstalls the app: the channel disconnects

  Metrics (Prometheus):  http://127.0.0.1:8081/metrics (auth)  :8082 (listings)  :8083 (orders)  :8084 (gateway)  :8085 (scheduler)
  Logs:                  .local/system/logs/<service>.log
  Stop everything:       make down
EOF
