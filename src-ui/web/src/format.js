// Times and hashes for people. Pure functions; `now` is unix seconds.

export const nowSecs = () => Math.floor(Date.now() / 1000);

/** 900 → "15 minutes", 3600 → "1 hour", 28800 → "8 hours". */
export function duration(secs) {
  const units = [
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    if (secs >= size && secs % size === 0) {
      const n = secs / size;
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  if (secs >= 3600) return `${Math.round(secs / 360) / 10} hours`;
  if (secs >= 60) return `${Math.round(secs / 60)} minutes`;
  return `${secs} seconds`;
}

/** A short span: "45 s", "12 min", "3 h", "2 d". */
function span(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h`;
  return `${Math.floor(secs / 86400)} d`;
}

/** "just now", "5 min ago"; "never" for null. */
export function ago(ts, now = nowSecs()) {
  if (ts === undefined || ts === null) return "never";
  const d = now - ts;
  return d < 5 ? "just now" : `${span(d)} ago`;
}

/** "in 59 min", "expired"; "until revoked" for null. */
export function until(ts, now = nowSecs()) {
  if (ts === undefined || ts === null) return "until revoked";
  const d = ts - now;
  return d <= 0 ? "expired" : `in ${span(d)}`;
}

/** The local date and time, for a title attribute. */
export function stamp(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "";
}

/** The first 12 hex digits, as `sha256:abcdef123456`. */
export function shortHash(hex) {
  return hex ? `sha256:${hex.slice(0, 12)}` : "";
}

/** A message for any thrown value (command errors carry `message`). */
export function messageOf(err) {
  if (err && typeof err === "object" && "message" in err) return String(err.message);
  return String(err);
}
