//! A verified token's claims mapped to the caller (user, groups, agent,
//! model, by the configured claim names), and the caller to the call's
//! identity, with what came from the token marked verified.

use super::{AuthError, Verifier};
use serde_json::{Map, Value};
use warden_engine::{Identity, Verified};

/// The identity a verified token gives: `user` always; the others when
/// the token carries them (`None`: fall back to a declared value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub groups: Option<Vec<String>>,
    pub agent: Option<String>,
    pub model: Option<String>,
}

impl Caller {
    /// The call's identity: the token's attributes (marked verified), else
    /// the operator's groups and model and the client's declared agent.
    pub fn identity(
        &self,
        declared_groups: &[String],
        declared_model: Option<&str>,
        declared_agent: Option<String>,
    ) -> Identity {
        Identity {
            user: self.user.clone(),
            groups: self
                .groups
                .clone()
                .unwrap_or_else(|| declared_groups.to_vec()),
            agent: self.agent.clone().or(declared_agent),
            model: self
                .model
                .clone()
                .or_else(|| declared_model.map(str::to_string)),
            verified: Verified {
                user: true,
                groups: self.groups.is_some(),
                agent: self.agent.is_some(),
                model: self.model.is_some(),
            },
        }
    }
}

impl Verifier {
    /// Maps verified claims to the caller.
    pub(super) fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let names = &self.claims;
        let user = match claims.get(&names.user) {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim(names.user.clone())),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                return Err(AuthError::BadClaim(
                    names.user.clone(),
                    "a non-empty string",
                ));
            }
        };
        let groups = match claims.get(&names.groups) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.split_whitespace().map(str::to_string).collect()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|g| g.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        AuthError::BadClaim(
                            names.groups.clone(),
                            "an array of strings or a space-separated string",
                        )
                    })?,
            ),
            Some(_) => {
                return Err(AuthError::BadClaim(
                    names.groups.clone(),
                    "an array of strings or a space-separated string",
                ));
            }
        };
        let string_claim = |name: &String| -> Result<Option<String>, AuthError> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AuthError::BadClaim(name.clone(), "a string")),
            }
        };
        let mut agent = None;
        for name in &names.agent {
            if let Some(a) = string_claim(name)? {
                agent = Some(a);
                break;
            }
        }
        let model = match &names.model {
            Some(name) => string_claim(name)?,
            None => None,
        };
        Ok(Caller {
            user,
            groups,
            agent,
            model,
        })
    }
}
