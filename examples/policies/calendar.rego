# The policy example of the seed article ("Authorization for AI Agents",
# shared/seeds/001), as written: Rego v0 syntax, so load it with
#
#   [policy]
#   rego_version = "v0"
#
# The only addition is the package line, which is where Valet Key reads
# allow and deny from. See docs/POLICY.md for what each input field holds.
package valetkey.authz

# Allow agent to read calendar events for its delegating user only
allow {
input.agent.purpose == "calendar-management"
input.action == "read"
input.resource.type == "calendar-events"
input.resource.owner == input.agent.delegating_user
time.now_ns() < input.agent.token_expiry_ns
}
# Deny all delete operations without human approval
deny {
input.action == "delete"
not input.human_approval.exists
}
# Deny cross-user data access
deny {
input.resource.owner != input.agent.delegating_user
not input.agent.has_admin_scope
}
