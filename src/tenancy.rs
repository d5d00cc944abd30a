//! Which tenant a request speaks for, from each interface's own credentials (SPEC §5).
//!
//! gRPC and Stateset use bearer API keys; Zaui its account id and token; Fabric XM the
//! `x-site-context` account plus an API key; Amazon its access key id; VTEX the store account.
//! In dev mode (no config file) every request is tenant `default` and nothing is checked.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use crate::auth::{Authenticator, Principal};
use crate::config::TenantConfig;
use crate::domain::TenantId;
use crate::error::CartError;
use crate::secret::Secret;

#[derive(Debug)]
pub struct Tenancy {
    authenticator: Authenticator,
    /// (account id, token, tenant) per Zaui block.
    zaui: Vec<(u64, Secret<String>, TenantId)>,
    xm: HashMap<String, TenantId>,
    amazon: HashMap<String, TenantId>,
    vtex: HashMap<String, TenantId>,
}

/// A principal for credentials that stand for a whole tenant (they may read and write).
fn tenant_principal(tenant: &TenantId) -> Principal {
    Principal {
        tenant: tenant.clone(),
        read: true,
        write: true,
    }
}

impl Tenancy {
    /// Tenant ids were validated when the config file was read.
    pub fn new(authenticator: Authenticator, tenants: &[TenantConfig]) -> Self {
        let mut tenancy = Self {
            authenticator,
            zaui: Vec::new(),
            xm: HashMap::new(),
            amazon: HashMap::new(),
            vtex: HashMap::new(),
        };
        for tenant in tenants {
            let Ok(id) = TenantId::parse(&tenant.id) else {
                continue;
            };
            if let Some(zaui) = &tenant.zaui {
                tenancy
                    .zaui
                    .push((zaui.account_id, zaui.token.clone(), id.clone()));
            }
            if let Some(xm) = &tenant.xm {
                tenancy.xm.insert(xm.account.clone(), id.clone());
            }
            if let Some(amazon) = &tenant.amazon {
                tenancy
                    .amazon
                    .insert(amazon.access_key_id.clone(), id.clone());
            }
            if let Some(vtex) = &tenant.vtex {
                tenancy
                    .vtex
                    .insert(vtex.account.to_ascii_lowercase(), id.clone());
            }
        }
        tenancy
    }

    pub fn is_dev(&self) -> bool {
        matches!(self.authenticator, Authenticator::Dev)
    }

    /// A bearer API key (`Authorization` header value).
    pub fn api_key(&self, authorization: Option<&str>) -> Result<Principal, CartError> {
        self.authenticator.authenticate(authorization)
    }

    /// Zaui's `zapiAccountId` and `zapiToken`; the token is compared in constant time.
    pub fn zaui(&self, account_id: u64, token: &str) -> Option<Principal> {
        if self.is_dev() {
            return Some(Principal::dev());
        }
        self.zaui
            .iter()
            .find(|(account, expected, _)| {
                *account == account_id
                    && bool::from(expected.expose().as_bytes().ct_eq(token.as_bytes()))
            })
            .map(|(_, _, tenant)| tenant_principal(tenant))
    }

    /// The tenant of a Fabric XM account (`x-site-context.account`).
    pub fn xm_account(&self, account: &str) -> Option<TenantId> {
        if self.is_dev() {
            return Some(TenantId::default_tenant());
        }
        self.xm.get(account).cloned()
    }

    /// Amazon's `AWSAccessKeyId`.
    pub fn amazon(&self, access_key_id: &str) -> Option<Principal> {
        if self.is_dev() {
            return Some(Principal::dev());
        }
        self.amazon.get(access_key_id).map(tenant_principal)
    }

    /// A VTEX store account (the Host's first label, or `an=`).
    pub fn vtex(&self, account: &str) -> Option<Principal> {
        if self.is_dev() {
            return Some(Principal::dev());
        }
        self.vtex
            .get(&account.to_ascii_lowercase())
            .map(tenant_principal)
    }
}
