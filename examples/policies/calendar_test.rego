# Tests of calendar.rego, each rule both ways. Run them with
#   valetkey policy test --dir examples/policies --rego-version v0
package valetkey.authz_test

import data.valetkey.authz

read_own := {
	"agent": {"purpose": "calendar-management", "delegating_user": "alice", "token_expiry_ns": 99999999999999999999, "has_admin_scope": false},
	"action": "read",
	"resource": {"type": "calendar-events", "owner": "alice"},
	"human_approval": {"exists": false},
}

test_reading_own_events_is_allowed {
	authz.allow with input as read_own
}

test_another_purpose_is_not_allowed {
	not authz.allow with input as object.union(read_own, {"agent": object.union(read_own.agent, {"purpose": "email"})})
}

test_an_expired_token_is_not_allowed {
	not authz.allow with input as object.union(read_own, {"agent": object.union(read_own.agent, {"token_expiry_ns": 1})})
}

test_writing_is_not_allowed {
	not authz.allow with input as object.union(read_own, {"action": "write"})
}

test_delete_without_approval_is_denied {
	authz.deny with input as object.union(read_own, {"action": "delete"})
}

test_delete_with_approval_is_not_denied {
	not authz.deny with input as object.union(read_own, {"action": "delete", "human_approval": {"exists": true}})
}

test_cross_user_access_is_denied {
	authz.deny with input as object.union(read_own, {"resource": {"type": "calendar-events", "owner": "bob"}})
}

test_cross_user_access_with_admin_scope_is_not_denied {
	not authz.deny with input as object.union(read_own, {
		"resource": {"type": "calendar-events", "owner": "bob"},
		"agent": object.union(read_own.agent, {"has_admin_scope": true}),
	})
}

test_own_data_is_not_denied {
	not authz.deny with input as read_own
}
