//! The Lua scripts, each prefixed with the shared prelude and built once per store.
//! `redis::Script` calls them by SHA (EVALSHA) and loads them again on NOSCRIPT.
//!
//! Every script declares its Redis 7 flags (`#!lua flags=...`, its first line). A script
//! without `allow-oom` is refused whole by a Redis over `maxmemory` (OOM, before its first
//! command), so a full Redis never holds half a change; only Get (it overwrites a timestamp in
//! place) and Remove (it frees) carry `allow-oom` and run when Redis is full. A script with
//! flags may only touch keys of one slot: each names only its own KEYS, one hash tag.

use redis::Script;

use crate::domain::CartPolicy;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Marks the start of a helper section in the prelude: `--- helper: NAME`.
const HELPER_MARK: &str = "--- helper: ";

/// Whether Lua `code` calls or names `name` (not as the tail of a longer identifier).
fn mentions(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// The Lua source of a script for a store with `policy`: the prelude's always-included part
/// (with the policy's values written in), the helpers the body needs (and the helpers those
/// need; a helper only calls helpers defined above it), the header field list when something
/// reads it, and the body as a function that the prelude's `once` runs at most once per
/// request id. The body's first line, its `#!lua` flags, goes first: Redis reads flags only
/// there.
pub fn source(script: &str, policy: &CartPolicy) -> String {
    let (flags, body) = script
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("#!lua"))
        .expect("every script declares its flags on its first line");
    let mut sections = PRELUDE.split(HELPER_MARK);
    let core = sections.next().unwrap_or_default();
    let helpers: Vec<(&str, &str)> = sections
        .map(|section| section.split_once('\n').unwrap_or((section, "")))
        .collect();
    let mut needed = body.to_owned();
    let mut chosen = vec![false; helpers.len()];
    for (i, (name, code)) in helpers.iter().enumerate().rev() {
        if mentions(&needed, name.trim()) {
            chosen[i] = true;
            needed.push_str(code);
        }
    }
    let mut source = format!("{flags}\n");
    if mentions(&needed, "META_FIELDS") {
        let fields: Vec<String> = super::codec::META_FIELDS
            .iter()
            .map(|f| format!("'{f}'"))
            .collect();
        source.push_str(&format!("local META_FIELDS = {{{}}}\n", fields.join(", ")));
    }
    let limits = &policy.limits;
    let mut core = core.to_owned();
    for (name, value) in [
        ("@CART_TTL_MS@", policy.cart_ttl_ms()),
        ("@TOMBSTONE_TTL_MS@", policy.tombstone_ttl_ms()),
        ("@REQUEST_ID_TTL_MS@", policy.request_id_ttl_ms()),
        ("@MAX_LINES@", i64::from(limits.max_lines)),
        ("@MAX_QUANTITY@", i64::from(limits.max_quantity)),
        ("@MAX_COUPONS@", i64::from(limits.max_coupons)),
        (
            "@MAX_CART_BYTES@",
            i64::try_from(limits.max_cart_bytes).unwrap_or(i64::MAX),
        ),
    ] {
        core = core.replace(name, &value.to_string());
    }
    source.push_str(&core);
    for ((_, code), chosen) in helpers.iter().zip(chosen) {
        if chosen {
            source.push_str(code);
        }
    }
    source.push_str(&format!("return once(function()\n{body}\nend)\n"));
    source
}

fn script(body: &str, policy: &CartPolicy) -> Script {
    Script::new(&source(body, policy))
}

pub struct Scripts {
    pub create: Script,
    pub get: Script,
    pub add_items: Script,
    pub update_items: Script,
    pub apply_coupon: Script,
    pub clear: Script,
    pub remove: Script,
    pub delete: Script,
}

impl Scripts {
    pub fn new(policy: &CartPolicy) -> Self {
        Self {
            create: script(include_str!("lua/create.lua"), policy),
            get: script(include_str!("lua/get.lua"), policy),
            add_items: script(include_str!("lua/add_items.lua"), policy),
            update_items: script(include_str!("lua/update_items.lua"), policy),
            apply_coupon: script(include_str!("lua/apply_coupon.lua"), policy),
            clear: script(include_str!("lua/clear.lua"), policy),
            remove: script(include_str!("lua/remove.lua"), policy),
            delete: script(include_str!("lua/delete.lua"), policy),
        }
    }

    /// The name of each script of [`Scripts::all`] (its `lua/` file), for spans and metrics.
    pub const NAMES: [&'static str; 8] = [
        "create",
        "get",
        "add_items",
        "update_items",
        "apply_coupon",
        "clear",
        "remove",
        "delete",
    ];

    /// The OpenTelemetry span name of each script's call (`db.operation.name` and script).
    pub const SPAN_NAMES: [&'static str; 8] = [
        "EVALSHA create",
        "EVALSHA get",
        "EVALSHA add_items",
        "EVALSHA update_items",
        "EVALSHA apply_coupon",
        "EVALSHA clear",
        "EVALSHA remove",
        "EVALSHA delete",
    ];

    /// The position of one of our scripts in [`Scripts::all`].
    pub fn index_of(&self, script: &Script) -> usize {
        self.all()
            .iter()
            .position(|s| std::ptr::eq(*s, script))
            .expect("a script of this store")
    }

    pub fn all(&self) -> [&Script; 8] {
        [
            &self.create,
            &self.get,
            &self.add_items,
            &self.update_items,
            &self.apply_coupon,
            &self.clear,
            &self.remove,
            &self.delete,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_carries_only_the_helpers_it_calls() {
        let policy = CartPolicy::default();
        let clear = source(include_str!("lua/clear.lua"), &policy);
        assert!(clear.contains("local CART_TTL, TOMBSTONE_TTL = '7776000000', '2592000000'"));
        let mut code = clear.lines().filter(|l| !l.trim_start().starts_with("--"));
        assert!(
            code.all(|l| !l.contains('@')),
            "every policy value is written in"
        );
        assert!(clear.contains("local function fail("));
        assert!(clear.contains("local function once("));
        assert!(clear.contains("local META_FIELDS = {'customer_id'"));
        assert!(!clear.contains("local function plan_add("));
        assert!(!clear.contains("local function snapshot("));
        // AddItems needs plan_add, which needs parse_line; snapshot needs header.
        let add = source(include_str!("lua/add_items.lua"), &policy);
        for helper in [
            "plan_add",
            "parse_line",
            "apply_add",
            "snapshot",
            "header",
            "live",
        ] {
            assert!(
                add.contains(&format!("local function {helper}(")),
                "{helper}"
            );
        }
        let remove = source(include_str!("lua/remove.lua"), &policy);
        assert!(!remove.contains("META_FIELDS"));
        assert!(mentions("x = header()", "header") && !mentions("x = header_of()", "header"));
    }

    /// The flags each script declares, and so whether a full Redis runs it.
    const FLAGS: [(&str, &str); 8] = [
        ("create", "#!lua"),
        ("get", "#!lua flags=allow-oom"),
        ("add_items", "#!lua"),
        ("update_items", "#!lua"),
        ("apply_coupon", "#!lua"),
        ("clear", "#!lua"),
        ("remove", "#!lua flags=allow-oom"),
        ("delete", "#!lua"),
    ];

    #[test]
    fn every_script_starts_with_its_flags() {
        let scripts = Scripts::new(&CartPolicy::default());
        let bodies = [
            include_str!("lua/create.lua"),
            include_str!("lua/get.lua"),
            include_str!("lua/add_items.lua"),
            include_str!("lua/update_items.lua"),
            include_str!("lua/apply_coupon.lua"),
            include_str!("lua/clear.lua"),
            include_str!("lua/remove.lua"),
            include_str!("lua/delete.lua"),
        ];
        for ((name, flags), body) in FLAGS.iter().zip(bodies) {
            let loaded = source(body, &CartPolicy::default());
            assert_eq!(loaded.lines().next(), Some(*flags), "{name}");
            let shebangs = loaded.lines().filter(|l| l.starts_with("#!")).count();
            assert_eq!(shebangs, 1, "{name}: one shebang");
            // Each script keeps the reason for its flags in its header comment.
            assert!(body.contains("-- Flags: "), "{name} says why");
        }
        assert_eq!(scripts.all().len(), FLAGS.len());
        assert_eq!(Scripts::NAMES, FLAGS.map(|(name, _)| name));
    }

    #[test]
    fn clear_names_the_header_positions_it_patches() {
        let body = include_str!("lua/clear.lua");
        let line = body
            .lines()
            .find(|l| l.starts_with("local STATUS, "))
            .expect("the positions line");
        let (names, positions) = line["local ".len()..].split_once(" = ").unwrap();
        for (name, position) in names.split(", ").zip(positions.split(", ")) {
            // `values` holds item_count first, then META_FIELDS.
            let index: usize = position.trim().parse().unwrap();
            let field = super::super::codec::META_FIELDS[index - 2];
            assert_eq!(field, name.to_ascii_lowercase(), "{name} = {index}");
        }
    }
}
