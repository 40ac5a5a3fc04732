# Shared by the maintainer scripts (build.sh pastes it in place of their
# "#USERS#" line). A package reaches per-user services only through each
# user's own manager: `each_user CMD` runs CMD once for every user manager
# running now, with `sysu` meaning `systemctl --user` as that user. Never
# fails the package operation: a manager that does not answer is skipped
# with a note.
sysu() {
  runuser -u "$user" -- env XDG_RUNTIME_DIR="$rt" systemctl --user "$@"
}
each_user() {
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null || return 0
  for rt in /run/user/[0-9]*; do
    [ -S "$rt/systemd/private" ] || continue
    user=$(getent passwd "${rt##*/}" | cut -d: -f1) || continue
    [ -n "$user" ] || continue
    "$@" >/dev/null 2>&1 ||
      echo "valetkey: could not $* for $user; they can do it with systemctl --user" >&2
  done
}
