//! The Lua scripts: [`Script`] is the one table of them (name, source, flags, keys, retry
//! class); each is prefixed with the shared prelude and built once per store.
//! `redis::Script` calls them by SHA (EVALSHA) and loads them again on NOSCRIPT.
//!
//! Every script declares its Redis 7 flags (`#!lua flags=...`, the first line of its source,
//! from its row of [`Script`]'s table; the reason is in the script's header). A script
//! without `allow-oom` is refused whole by a Redis over `maxmemory` (OOM, before its first
//! command), so a full Redis never holds half a change; only Get (it at most re-arms an expiry
//! in place) and Remove (it frees) carry `allow-oom` and run when Redis is full. A script with
//! flags may only touch keys of one slot: each names only its own KEYS, one hash tag.

use super::codec::MetaField;
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

/// Lua `code` without its comment lines (the scripts have no comment after code on a line),
/// so that a helper a comment names is not built on every call.
fn without_comments(code: &str) -> String {
    code.split_inclusive('\n')
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect()
}

/// The Lua source of a script for a store with `policy`: the prelude's always-included
/// part, the helpers the body's code names (and the helpers their code names; a helper only
/// calls helpers defined above it), and the body as a function that the prelude's `once` runs
/// at most once per idempotency key; with the constants (policy values, header size, field
/// positions and names) written in as literals.
pub fn source(body: &str, policy: &CartPolicy) -> String {
    let mut sections = PRELUDE.split(HELPER_MARK);
    let core = sections.next().unwrap_or_default();
    let helpers: Vec<(&str, &str)> = sections
        .map(|section| section.split_once('\n').unwrap_or((section, "")))
        .collect();
    let mut needed = without_comments(body);
    let mut chosen = vec![false; helpers.len()];
    for (i, (name, code)) in helpers.iter().enumerate().rev() {
        if mentions(&needed, name.trim()) {
            chosen[i] = true;
            needed.push_str(&without_comments(code));
        }
    }
    let mut source = core.to_owned();
    for ((_, code), chosen) in helpers.iter().zip(chosen) {
        if chosen {
            source.push_str(code);
        }
    }
    source.push_str(&format!("return once(function()\n{body}\nend)\n"));
    write_in(&source, &constants(policy))
}

/// The constants written into the scripts' code as literals (see `lua/prelude.lua`): the
/// policy, the header's size, each field's position (`F_<FIELD>`, from [`MetaField`]), the
/// field names (`META_FIELDS`, a list of string literals: no table or function is built for
/// them on a call), the packed empty array, and the keys and arguments by their names
/// (`CART` is `KEYS[1]`: no local, so no upvalue in the closures that use it).
fn constants(policy: &CartPolicy) -> Vec<(String, String)> {
    let limits = &policy.limits;
    let mut constants: Vec<(String, String)> = [
        ("CART_TTL", policy.cart_ttl_ms()),
        ("TOMBSTONE_TTL", policy.tombstone_ttl_ms()),
        ("REFRESH_SLACK", policy.refresh_slack_ms()),
        ("REQUEST_TTL", policy.request_id_ttl_ms()),
        ("MAX_LINES", i64::from(limits.max_lines)),
        ("MAX_QUANTITY", i64::from(limits.max_quantity)),
        ("MAX_COUPONS", i64::from(limits.max_coupons)),
        (
            "MAX_CART_BYTES",
            i64::try_from(limits.max_cart_bytes).unwrap_or(i64::MAX),
        ),
        ("META_COUNT", MetaField::ALL.len() as i64),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_string()))
    .chain(
        [
            ("CART", "KEYS[1]"),
            ("V1_LINES", "KEYS[2]"),
            ("V1_COUPONS", "KEYS[3]"),
            ("REQUEST", "KEYS[4]"),
            ("EXPECTED", "ARGV[2]"),
            ("FINGERPRINT", "ARGV[3]"),
            ("NONE", r"'\144'"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    )
    .collect();
    let names: Vec<String> = MetaField::ALL
        .iter()
        .map(|f| format!("'{}'", f.name()))
        .collect();
    constants.push(("META_FIELDS".to_owned(), names.join(", ")));
    constants.extend(MetaField::ALL.iter().map(|f| {
        (
            format!("F_{}", f.name().to_ascii_uppercase()),
            f.position().to_string(),
        )
    }));
    constants
}

/// `code` with every mention of a constant's name, outside comment lines, replaced by its
/// value.
fn write_in(code: &str, constants: &[(String, String)]) -> String {
    let mut out = String::with_capacity(code.len());
    for line in code.split_inclusive('\n') {
        if line.trim_start().starts_with("--") {
            out.push_str(line);
            continue;
        }
        let mut line = line.to_owned();
        for (name, value) in constants {
            if mentions(&line, name) {
                line = replace_mentions(&line, name, value);
            }
        }
        out.push_str(&line);
    }
    out
}

/// `code` with each mention of `name` (see [`mentions`]) replaced by `value`.
fn replace_mentions(code: &str, name: &str, value: &str) -> String {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(code.len());
    let mut rest = 0;
    for (at, _) in code.match_indices(name) {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        if at >= rest && !ident(before) && !ident(after) {
            out.push_str(&code[rest..at]);
            out.push_str(value);
            rest = at + name.len();
        }
    }
    out.push_str(&code[rest..]);
    out
}

/// Every Lua script of the store, and what the store needs to know about each: the one table
/// of names, sources, flags, keys and retry classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Create,
    Get,
    AddItems,
    UpdateItems,
    ApplyCoupon,
    Clear,
    Remove,
    Delete,
    Peek,
    Freeze,
    Unfreeze,
    Claim,
    Seal,
    Unseal,
    MergeIn,
    FinishMerge,
}

/// When a call whose outcome is unknown (the connection broke after it was sent) may be sent
/// again. A call that never reached Redis is always sent again while time remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// A second run changes nothing the first did not: Get, and Delete (idempotent by its
    /// order number).
    Always,
    /// A second run could apply twice, unless the call is guarded by `expected_version` or
    /// carries an idempotency key (then it replays the first run's outcome).
    WhenGuarded,
}

/// A KEYS entry of the scripts (see `lua/prelude.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `cart:{tenant:id}`: the cart's value (layout v2), or a v1 cart's header hash.
    Meta,
    /// `cart:{tenant:id}:lines`: a v1 cart's lines hash (read, then deleted, by v2 scripts).
    Lines,
    /// `cart:{tenant:id}:coupons`: a v1 cart's coupons hash (likewise).
    Coupons,
}

/// The cart keys, in KEYS order; a call with an idempotency key appends its record.
const CART_KEYS: &[Key] = &[Key::Meta, Key::Lines, Key::Coupons];

impl Script {
    pub const ALL: [Script; 16] = [
        Self::Create,
        Self::Get,
        Self::AddItems,
        Self::UpdateItems,
        Self::ApplyCoupon,
        Self::Clear,
        Self::Remove,
        Self::Delete,
        Self::Peek,
        Self::Freeze,
        Self::Unfreeze,
        Self::Claim,
        Self::Seal,
        Self::Unseal,
        Self::MergeIn,
        Self::FinishMerge,
    ];

    /// Its `lua/` file, the `db.stored_procedure.name` of spans and the `script` label of
    /// metrics.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The OpenTelemetry span name of its call.
    pub fn span_name(self) -> &'static str {
        self.row().span_name
    }

    /// The Redis 7 flags it declares in its `#!lua` line.
    pub fn flags(self) -> &'static [&'static str] {
        self.row().flags
    }

    /// The KEYS it is called with (before the idempotency record).
    pub fn keys(self) -> &'static [Key] {
        self.row().keys
    }

    pub fn retry_class(self) -> RetryClass {
        self.row().retry
    }

    /// Whether it changes the cart (and so waits for replicas per `Durability`).
    pub fn mutates(self) -> bool {
        self.row().mutates
    }

    /// Its position in [`Script::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn row(self) -> &'static Row {
        &TABLE[self.index()]
    }
}

/// One row of [`TABLE`].
struct Row {
    name: &'static str,
    span_name: &'static str,
    body: &'static str,
    flags: &'static [&'static str],
    keys: &'static [Key],
    retry: RetryClass,
    mutates: bool,
}

macro_rules! row {
    ($name:literal, $flags:expr, $retry:ident, mutates: $mutates:literal) => {
        Row {
            name: $name,
            span_name: concat!("EVALSHA ", $name),
            body: include_str!(concat!("lua/", $name, ".lua")),
            flags: $flags,
            keys: CART_KEYS,
            retry: RetryClass::$retry,
            mutates: $mutates,
        }
    };
}

/// In the order of [`Script::ALL`].
const TABLE: [Row; 16] = [
    row!("create", &[], WhenGuarded, mutates: true),
    row!("get", &["allow-oom"], Always, mutates: false),
    row!("add_items", &[], WhenGuarded, mutates: true),
    row!("update_items", &[], WhenGuarded, mutates: true),
    row!("apply_coupon", &[], WhenGuarded, mutates: true),
    row!("clear", &[], WhenGuarded, mutates: true),
    row!("remove", &["allow-oom"], WhenGuarded, mutates: true),
    row!("delete", &[], Always, mutates: true),
    row!("peek", &["no-writes", "allow-oom"], Always, mutates: false),
    row!("freeze", &[], WhenGuarded, mutates: true),
    row!("unfreeze", &[], WhenGuarded, mutates: true),
    // Idempotent by themselves: a second run replies as the first left the cart.
    row!("claim", &[], Always, mutates: true),
    row!("seal", &[], Always, mutates: true),
    row!("unseal", &["allow-oom"], Always, mutates: true),
    // Always under the merge's idempotency key.
    row!("merge_in", &[], WhenGuarded, mutates: true),
    row!("finish_merge", &[], Always, mutates: true),
];

/// Every script, built once per store (for its policy).
pub struct Scripts([redis::Script; Script::ALL.len()]);

impl Scripts {
    pub fn new(policy: &CartPolicy) -> Self {
        Self(Script::ALL.map(|script| redis::Script::new(&script_source(script, policy))))
    }

    pub fn get(&self, script: Script) -> &redis::Script {
        &self.0[script.index()]
    }
}

/// The full source of `script` for a store with `policy`: its flags line (Redis reads flags
/// only on the first line; a script without any still declares that it has none, which is
/// what makes a full Redis refuse it), then [`source`].
pub fn script_source(script: Script, policy: &CartPolicy) -> String {
    let mut text = match script.flags() {
        [] => "#!lua\n".to_owned(),
        flags => format!("#!lua flags={}\n", flags.join(",")),
    };
    text.push_str(&source(script.row().body, policy));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_carries_only_the_helpers_it_calls() {
        let policy = CartPolicy::default();
        let clear = script_source(Script::Clear, &policy);
        // Constants are literals in the code (Clear restarts the lifetime: 90 days).
        assert!(clear.contains("local expires = NOW + 7776000000"));
        let code: Vec<&str> = clear
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        for (name, _) in constants(&policy) {
            assert!(
                code.iter().all(|l| !mentions(l, &name)),
                "{name} is written in"
            );
        }
        let get = script_source(Script::Get, &policy);
        assert!(get.contains("if expires < NOW + 7776000000 - 77760000 then"));
        assert!(clear.contains("local function fail("));
        assert!(clear.contains("local function once("));
        // Clear reads v1 carts too: it carries the v1 field names, from the one list, in the
        // reader of v1 carts that only a v1 cart's call defines (nested in `load`).
        assert!(clear.contains("redis.call('HMGET', KEYS[1], 'customer_id', "));
        assert!(clear.contains("    local function v1_cart("));
        assert!(!clear.contains("local function plan_add("));
        assert!(!clear.contains("local function contents("));
        // Clear splices its header: no header table is packed, so it needs no `store`.
        assert!(!clear.contains("local function store("));
        // AddItems needs plan_add, which needs line_index; store needs cart_reply.
        let add = script_source(Script::AddItems, &policy);
        for helper in [
            "plan_add",
            "line_index",
            "contents",
            "store",
            "cart_reply",
            "live",
            "load",
        ] {
            assert!(
                add.contains(&format!("local function {helper}(")),
                "{helper}"
            );
        }
        // A helper only a comment names is left out (`load`'s comment names `store`).
        let peek = script_source(Script::Peek, &policy);
        assert!(peek.contains("local function load(") && peek.contains("local function as_is("));
        assert!(!peek.contains("local function store("));
        let remove = script_source(Script::Remove, &policy);
        assert!(!remove.contains("local function store("));
        assert!(mentions("x = header()", "header") && !mentions("x = header_of()", "header"));
    }

    #[test]
    fn every_script_starts_with_its_flags() {
        // The flags each script declares, and so whether a full Redis runs it.
        let expected = [
            (Script::Create, "#!lua"),
            (Script::Get, "#!lua flags=allow-oom"),
            (Script::AddItems, "#!lua"),
            (Script::UpdateItems, "#!lua"),
            (Script::ApplyCoupon, "#!lua"),
            (Script::Clear, "#!lua"),
            (Script::Remove, "#!lua flags=allow-oom"),
            (Script::Delete, "#!lua"),
            (Script::Peek, "#!lua flags=no-writes,allow-oom"),
            (Script::Freeze, "#!lua"),
            (Script::Unfreeze, "#!lua"),
            (Script::Claim, "#!lua"),
            (Script::Seal, "#!lua"),
            (Script::Unseal, "#!lua flags=allow-oom"),
            (Script::MergeIn, "#!lua"),
            (Script::FinishMerge, "#!lua"),
        ];
        for (script, flags) in expected {
            let loaded = script_source(script, &CartPolicy::default());
            assert_eq!(loaded.lines().next(), Some(flags), "{}", script.name());
            let shebangs = loaded.lines().filter(|l| l.starts_with("#!")).count();
            assert_eq!(shebangs, 1, "{}: one shebang", script.name());
            // Each script keeps the reason for its flags in its header comment.
            assert!(
                script.row().body.contains("-- Flags: "),
                "{} says why",
                script.name()
            );
        }
        assert_eq!(Script::ALL.len(), expected.len());
    }

    #[test]
    fn header_positions_come_from_the_rust_field_list() {
        let status = MetaField::Status.position();
        let version = MetaField::Version.position();
        let generated = MetaField::Generated.position();
        let create = script_source(Script::Create, &CartPolicy::default());
        assert!(create.contains(&format!(
            "h[{status}], h[{version}], h[{generated}] = 'active', 1, ARGV[10]"
        )));
        assert!(create.contains(&format!(
            "for i = 1, {} do h[i] = false end",
            MetaField::ALL.len()
        )));
        assert_eq!(
            replace_mentions("F_A + F_AB + xF_A + F_A", "F_A", "1"),
            "1 + F_AB + xF_A + 1"
        );
        // No script indexes a header by a literal position.
        for code in Script::ALL
            .map(|s| s.row().body)
            .into_iter()
            .chain([PRELUDE])
        {
            let literal = code
                .match_indices("h[")
                .any(|(at, _)| code[at + "h[".len()..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(!literal, "{code}");
        }
    }

    /// Clear splices the header by position (see `lua/clear.lua`): it names the fields it
    /// decodes by their place in two runs of fields, and packs updated_at .. line_bytes anew
    /// in this order.
    #[test]
    fn clear_splices_the_header_in_the_field_order_it_assumes() {
        use MetaField::*;
        let position = |f: MetaField| f.position();
        // The first run ends at created_at; status is its seventh value.
        assert_eq!((position(Status), position(CreatedAt)), (7, 8));
        let second = [
            UpdatedAt,
            LastActivityAt,
            ClearedAt,
            ClearReason,
            DeletedAt,
            OrderNumber,
            Version,
            NextPosition,
            Generated,
            ItemCount,
            LineBytes,
        ];
        for (i, field) in second.into_iter().enumerate() {
            assert_eq!(
                position(field),
                position(CreatedAt) + 1 + i,
                "{}",
                field.name()
            );
        }
        assert!(position(FrozenUntil) > position(LineBytes));
        let clear = script_source(Script::Clear, &CartPolicy::default());
        assert!(clear.contains("cmsgpack.unpack_limit(head, 8, 3)"));
        assert!(clear.contains("cmsgpack.unpack_limit(head, 19 - 8, kept)"));
    }

    #[test]
    fn the_table_names_each_script_after_its_file() {
        for script in Script::ALL {
            assert_eq!(Script::ALL[script.index()], script);
            assert_eq!(script.span_name(), format!("EVALSHA {}", script.name()));
            assert_eq!(script.keys(), CART_KEYS);
        }
        assert_eq!(Script::Get.retry_class(), RetryClass::Always);
        assert!(!Script::Get.mutates() && Script::Clear.mutates());
    }
}
