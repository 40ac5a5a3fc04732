# The built-in policy of Valet Key.
#
# It always applies. Its `deny` and `require_approval` rules are guard
# rails that user policies cannot switch off; its `allow` decides only
# while the policy directory holds no policy of the user's own (then the
# user's `data.valetkey.authz.allow` decides instead).
#
# Print it with `valetkey policy show-builtin`.
package valetkey.builtin

import rego.v1

rank := {"public": 0, "internal": 1, "confidential": 2}

# Agents in good standing may go on to grants and consent.
allow if input.agent.status == "active"

deny contains msg if {
	input.agent.status != "active"
	msg := sprintf("agent %s is %s", [input.agent.name, input.agent.status])
}

deny contains msg if {
	rank[input.resource.sensitivity] > rank[input.agent.classification]
	msg := sprintf(
		"%s data is above agent %s's classification (%s)",
		[input.resource.sensitivity, input.agent.name, input.agent.classification],
	)
}

deny contains msg if {
	count(input.agent.providers) > 0
	not input.provider in input.agent.providers
	msg := sprintf("agent %s is not registered for provider %s", [input.agent.name, input.provider])
}

deny contains msg if {
	input.tool != ""
	count(input.agent.tools) > 0
	not input.tool in input.agent.tools
	msg := sprintf("agent %s is not registered for tool %s", [input.agent.name, input.tool])
}

deny contains msg if {
	input.delegation.depth > input.delegation.max_depth
	msg := sprintf("delegation depth %d is beyond the limit %d", [input.delegation.depth, input.delegation.max_depth])
}

# The seed article: any delegation beyond depth 2 needs a person.
require_approval contains msg if {
	input.action == "delegate"
	input.delegation.depth > 2
	not input.human_approval.exists
	msg := sprintf("a delegation at depth %d needs your approval", [input.delegation.depth])
}

# Destructive or administrative access is approved request by request.
require_approval contains msg if {
	input.action in {"delete", "admin"}
	not input.human_approval.exists
	msg := sprintf("%s access to %s needs your approval", [input.action, input.provider])
}
