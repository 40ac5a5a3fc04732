# The parts of a private Valet Key world, shared by scripts/demo.sh and
# bench/run.sh (sourced, not run). Each caller has already started its own
# D-Bus session and set XDG_* to a throwaway directory; these expect $repo,
# $work and a `pids` array (what to kill on exit).

# An unlocked gnome-keyring (Secret Service) on this session bus.
world_keyring() {
  eval "$(printf %s "$1" | gnome-keyring-daemon --unlock --components=secrets)"
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q true; do sleep 0.1; done
}

world_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The test IdP (oidc-provider) over TLS with a fresh CA in $work/certs.
# Sets $port (the issuer's) and $control (its plain-HTTP test port).
world_provider() {
  "$repo/tests/oidc/make-certs.sh" "$work/certs" >/dev/null
  port=$(world_free_port)
  control=$(world_free_port)
  OIDC_PORT=$port OIDC_CONTROL_PORT=$control OIDC_TLS_CERT="$work/certs/leaf.pem" OIDC_TLS_KEY="$work/certs/leaf.key" \
    node "$repo/tests/oidc/provider.mjs" > "$work/provider.out" 2> "$work/provider.log" &
  pids+=($!)
  until grep -q '"ready":true' "$work/provider.out" 2>/dev/null; do sleep 0.1; done
}

# config.toml's section for that IdP, shown to people as "$1".
world_provider_toml() {
  cat <<TOML
[providers.local]
display_name = "$1"
issuer = "https://127.0.0.1:$port"
client_id = "valetkey-cli"
allowed_scopes = ["repo:read", "repo:write", "issues:read"]
login_scopes_extra = ["openid", "offline_access"]
resource = "https://api.valetkey.test"
narrows_on_refresh = true
extra_auth_params = { prompt = "consent" }
ca_file = "$work/certs/ca.pem"
TOML
}
