//! Tenant ids (`X-Scope-OrgID`), validated as Tempo validates them before they become part of
//! an object path: at most 150 bytes of `[0-9a-zA-Z!-_.*'()]`, and not `.` or `..`.

/// Tempo's tenant when multi-tenancy is off or no header is sent.
pub const DEFAULT_TENANT: &str = "single-tenant";

/// A validated tenant id: safe as one path segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

/// Why a tenant id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {id:?}: {reason}")]
pub struct InvalidTenant {
    /// The id as given.
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TenantId {
    /// Validates `id`; an absent or empty header means the default tenant.
    pub fn parse(id: Option<&str>) -> Result<Self, InvalidTenant> {
        let id = match id.map(str::trim) {
            None | Some("") => return Ok(TenantId(DEFAULT_TENANT.into())),
            Some(id) => id,
        };
        let fail = |reason| {
            Err(InvalidTenant {
                id: id.to_owned(),
                reason,
            })
        };
        if id.len() > 150 {
            return fail("longer than 150 bytes");
        }
        if id == "." || id == ".." {
            return fail("'.' and '..' are not allowed");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
        if !id.chars().all(allowed) {
            return fail("only 0-9 a-z A-Z and !-_.*'() are allowed");
        }
        Ok(TenantId(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_tempo() {
        assert_eq!(
            TenantId::parse(None).expect("default").as_str(),
            "single-tenant"
        );
        assert_eq!(
            TenantId::parse(Some("team-a_1.(x)*'!"))
                .expect("ok")
                .as_str(),
            "team-a_1.(x)*'!"
        );
        for bad in [
            "..",
            ".",
            "a/b",
            "a\\b",
            "a b",
            "ä",
            "%2e%2e",
            &"x".repeat(151),
        ] {
            assert!(TenantId::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
