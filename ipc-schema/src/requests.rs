//! One message enum per socket, made from one list.
//!
//! Each socket's methods are listed once, below. From that list come the
//! method names a dispatcher matches ([`AgentMethod`], [`ControlMethod`]),
//! the requests with their typed params ([`AgentRequest`],
//! [`ControlRequest`]), the names an `unknown_method` error lists, and the
//! schema's `x-methods`. A dispatcher is one exhaustive `match` over the
//! request enum, so a method added to a list and not handled does not
//! compile, and one handled but not listed cannot be reached.
//!
//! Two steps, as pueue's `handle_request` is one: the name first
//! ([`AgentMethod::from_wire`]), so a dispatcher can refuse a method
//! before reading its params (an agent learns nothing before `hello`, not
//! even which params a method takes), then the params ([`AgentMethod::parse`]).

use schemars::SchemaGenerator;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::admin::{AuditQuery, GrantsAdd, GrantsList, LoginRecord, Logout, ProvidersStatus};
use crate::boxes::{BoxClose, BoxOpen, BoxReport, BoxStarted};
use crate::control::{
    ActivityList, AgentsEdit, AgentsLifecycle, AgentsList, AgentsReinstate, AgentsShow,
    AgentsStats, ConsentDecide, ConsentList, EventsSubscribe, IssuingSet, KeysRotate, PolicyStatus,
    Revoke, Status,
};
use crate::mcp::{McpAdd, McpList, McpRemove};
use crate::methods::{
    ConsentWait, DelegationCreate, Hello, Jwks, Method, ProvidersList, ProxyOpen, TokenGet,
    TokenPlaceholder, Whoami,
};
use crate::{ErrorCode, RpcError};

fn invalid(method: &str, e: serde_json::Error) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidParams,
        format!("invalid params for {method}: {e}; see PROTOCOL.md"),
    )
}

/// `methods[NAME]`: the method's params and result schemas.
fn method_entry<M: Method>(gen: &mut SchemaGenerator, methods: &mut Map<String, Value>) {
    let params = gen.subschema_for::<M::Params>();
    let result = gen.subschema_for::<M::Result>();
    methods.insert(
        M::NAME.to_owned(),
        json!({ "params": params, "result": result }),
    );
}

macro_rules! requests {
    (
        $(#[$mdoc:meta])* names: $names:ident,
        $(#[$rdoc:meta])* requests: $requests:ident,
        methods: { $($m:ident),+ $(,)? }
    ) => {
        $(#[$mdoc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $names {
            $(
                #[doc = concat!("`", stringify!($m), "`.")]
                $m,
            )+
        }

        impl $names {
            /// Every method, in the list's order.
            pub const ALL: &'static [$names] = &[$($names::$m),+];

            /// The wire name (`token.get`).
            pub const fn wire(self) -> &'static str {
                match self {
                    $($names::$m => $m::NAME,)+
                }
            }

            /// The method called `name` on the wire, if there is one.
            pub fn from_wire(name: &str) -> Option<Self> {
                match name {
                    $($m::NAME => Some($names::$m),)+
                    _ => None,
                }
            }

            /// The request with its params read from `raw` (absent: `{}`);
            /// `invalid_params` names the method and serde's reason.
            pub fn parse(self, raw: Option<&RawValue>) -> Result<$requests, RpcError> {
                let text = raw.map_or("{}", |r| r.get());
                match self {
                    $($names::$m => serde_json::from_str(text)
                        .map($requests::$m)
                        .map_err(|e| invalid($m::NAME, e)),)+
                }
            }

            /// The wire names, comma-separated, for an `unknown_method`
            /// message.
            pub fn listed() -> String {
                Self::ALL.iter().map(|m| m.wire()).collect::<Vec<_>>().join(", ")
            }

            /// Each method's params and result schemas, by wire name.
            pub(crate) fn schema_entries(gen: &mut SchemaGenerator) -> Map<String, Value> {
                let mut methods = Map::new();
                $(method_entry::<$m>(gen, &mut methods);)+
                methods
            }
        }

        $(#[$rdoc])*
        pub enum $requests {
            $(
                #[doc = concat!("`", stringify!($m), "` with its params.")]
                $m(<$m as Method>::Params),
            )+
        }

        impl $requests {
            /// Which method it is.
            pub fn method(&self) -> $names {
                match self {
                    $($requests::$m(_) => $names::$m,)+
                }
            }
        }

        /// The method's name only: params may hold what a log must not.
        impl std::fmt::Debug for $requests {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.method().wire())
            }
        }
    };
}

requests! {
    /// The methods of `agent.sock` (and of a box's socket).
    names: AgentMethod,
    /// A request on `agent.sock`.
    requests: AgentRequest,
    methods: {
        Hello,
        TokenGet,
        TokenPlaceholder,
        ProxyOpen,
        ConsentWait,
        ProvidersList,
        Whoami,
        DelegationCreate,
        Jwks,
        BoxReport,
    }
}

requests! {
    /// The methods of `control.sock` (the tray, the CLI, `valetkey run`).
    names: ControlMethod,
    /// A request on `control.sock`.
    requests: ControlRequest,
    methods: {
        ConsentList,
        ConsentDecide,
        AgentsList,
        AgentsReinstate,
        AgentsShow,
        AgentsStats,
        AgentsEdit,
        AgentsLifecycle,
        KeysRotate,
        PolicyStatus,
        Revoke,
        IssuingSet,
        Status,
        ActivityList,
        EventsSubscribe,
        GrantsAdd,
        GrantsList,
        LoginRecord,
        Logout,
        ProvidersStatus,
        AuditQuery,
        BoxOpen,
        BoxStarted,
        BoxClose,
        McpAdd,
        McpList,
        McpRemove,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("raw")
    }

    #[test]
    fn every_name_comes_back_and_no_two_methods_share_one() {
        let mut seen = std::collections::HashSet::new();
        for m in AgentMethod::ALL {
            assert_eq!(AgentMethod::from_wire(m.wire()), Some(*m));
            assert!(seen.insert(m.wire()), "{} twice", m.wire());
        }
        for m in ControlMethod::ALL {
            assert_eq!(ControlMethod::from_wire(m.wire()), Some(*m));
            assert!(seen.insert(m.wire()), "{} on both sockets", m.wire());
        }
        assert_eq!(seen.len(), 37);
        assert_eq!(AgentMethod::from_wire("tokens.steal"), None);
        assert!(AgentMethod::listed().starts_with("hello, token.get, "));
    }

    /// The document other-language clients read names every method the
    /// daemon answers: an agent method as a `### ` heading, a control one
    /// as a row of the control socket's table.
    #[test]
    fn protocol_md_documents_every_method() {
        let doc = include_str!("../PROTOCOL.md");
        for m in AgentMethod::ALL {
            let heading = format!("\n### `{}`\n", m.wire());
            assert!(doc.contains(&heading), "PROTOCOL.md has no {heading:?}");
        }
        let control = &doc[doc.find("## Control socket").expect("control section")..];
        for m in ControlMethod::ALL {
            let row = format!("\n| `{}` |", m.wire());
            assert!(
                control.contains(&row),
                "PROTOCOL.md's control table has no {row:?}"
            );
        }
    }

    #[test]
    fn params_are_typed_and_a_bad_one_names_its_method() {
        let r = AgentMethod::TokenGet
            .parse(Some(&raw(r#"{"provider":"github","scopes":["repo"]}"#)))
            .expect("parses");
        match &r {
            AgentRequest::TokenGet(p) => assert_eq!(p.provider, "github"),
            other => panic!("{other:?}"),
        }
        assert_eq!(format!("{r:?}"), "token.get");
        // Absent params are `{}`.
        assert!(matches!(
            ControlMethod::Status.parse(None),
            Ok(ControlRequest::Status(_))
        ));
        let e = AgentMethod::TokenGet
            .parse(Some(&raw(r#"{"provider":7}"#)))
            .expect_err("bad");
        assert_eq!(e.code, ErrorCode::InvalidParams.code());
        assert!(
            e.message.starts_with("invalid params for token.get: "),
            "{}",
            e.message
        );
    }
}
