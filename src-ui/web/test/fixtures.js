// Shapes exactly as the control protocol sends them (schema/control-protocol.json).
export const NOW = 1_800_000_000;

export const status = (over = {}) => ({
  daemon_version: "0.1.0",
  paused: false,
  session_locked: false,
  on_lock: "hold",
  pending: 1,
  ...over,
});

export const consent = (over = {}) => ({
  id: "c_0123456789abcdef0123456789abcdef",
  agent_id: 7,
  agent: { name: "issue-triage", version: "1.4.2", purpose: "label new GitHub issues" },
  exe: "/usr/bin/python3.11",
  sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  pid: 4242,
  parents: [
    { pid: 4200, exe: "/usr/bin/bash" },
    { pid: 1, exe: null },
  ],
  provider: "github",
  provider_display: "GitHub",
  scopes: ["issues:read", "repo:read"],
  resource: "https://api.github.com",
  duration_secs: 3600,
  created_at: NOW - 10,
  expires_at: NOW + 110,
  requests: 2,
  ...over,
});

export const agent = (over = {}) => ({
  id: 7,
  name: "issue-triage",
  purpose: "label new GitHub issues",
  version: "1.4.2",
  status: "active",
  first_seen: NOW - 7200,
  last_seen: NOW - 30,
  binaries: [{ exe: "/usr/bin/python3.11", sha256: "9f86d081884c7d659a2f", last_seen: NOW - 30 }],
  grants: [
    {
      id: 11,
      provider: "github",
      scopes: ["repo:read"],
      binary_sha256: "9f86d081884c7d659a2f",
      created_at: NOW - 600,
      expires_at: NOW + 3000,
      last_used_at: NOW - 60,
    },
  ],
  ...over,
});
