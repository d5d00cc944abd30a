//! The Lua scripts: [`Script`] is the one table of them (name, source, flags, keys, retry
//! class). The store calls them as one Redis 7 Functions library ([`Library`]: FUNCTION LOAD
//! once, FCALL per call), whose helpers are built once when it is loaded, so a call runs only
//! its body (an EVAL script builds every closure it defines on every call). Where Redis
//! refuses FUNCTION LOAD (an ACL without `function`, a full Redis, a Redis without
//! Functions), it calls each script instead, prefixed with the prelude's part and helpers it
//! needs, by SHA (EVALSHA; [`Scripts`]). Both are built from the same sources, once per store.
//!
//! Every script declares its Redis 7 flags (`#!lua flags=...`, the first line of its source;
//! `flags = {...}` of its function in the library), from its row of [`Script`]'s table; the
//! reason is in the script's header. A script without `allow-oom` is refused whole by a Redis
//! over `maxmemory` (OOM, before its first command), so a full Redis never holds half a
//! change; only Get (it at most re-arms an expiry in place) and Remove (it frees) carry
//! `allow-oom` and run when Redis is full. A script with flags may only touch keys of one
//! slot: each names only its own KEYS, one hash tag.
//!
//! The library is `cart_<hash>` and its functions `cart_<hash>_<script>`, the hash that of its
//! code (the policy's constants written in): two versions of the service against one Redis
//! (a rolling deploy, or two configs) each load and call their own, and never replace each
//! other's. What that leaves behind is the libraries of versions no longer running, a few tens
//! of KB each in every master's memory (and in its RDB/AOF). `FUNCTION LIST LIBRARYNAME cart_`
//! shows them; `FUNCTION DELETE cart_<hash>` (on every master of a Cluster) removes one once
//! no instance of its version runs; a version that meets its library gone loads it again.

use sha2::Digest;

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
pub(super) fn without_comments(code: &str) -> String {
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

    /// The OpenTelemetry span name of its call: `FCALL <name>`, or `EVALSHA <name>` when it
    /// is not sent as a function (`functions` false).
    pub fn span_name(self, functions: bool) -> &'static str {
        let row = self.row();
        if functions {
            row.fcall_span
        } else {
            row.evalsha_span
        }
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
    fcall_span: &'static str,
    evalsha_span: &'static str,
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
            fcall_span: concat!("FCALL ", $name),
            evalsha_span: concat!("EVALSHA ", $name),
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

/// The Redis 7 Functions library of every script for a store with `policy` (FUNCTION LOAD
/// once, FCALL per call): the prelude's code and every helper defined once at library level,
/// so that a call builds no closure; per call, only the state the EVAL scripts get anew (KEYS,
/// ARGV, NOW, V1) is assigned, at the function's entry (Redis runs one function at a time).
/// Each script is its body as a function, its own top-level helpers beside it, registered
/// with the flags of its row.
///
/// The library's and its functions' names carry a hash of the code, so that two versions of
/// the service (a rolling deploy) against one Redis each load and call their own.
pub struct Library {
    /// `cart_<hash>`.
    pub name: String,
    /// The `#!lua name=...` source that FUNCTION LOAD takes.
    pub source: String,
    /// Each script's function, `cart_<hash>_<script>`, in the order of [`Script::ALL`].
    functions: [String; Script::ALL.len()],
}

/// The library's per-call state as library-level locals, in place of the prelude's lines that
/// set it on every EVAL (`local NOW = ...`, `local V1 = ...`, KEYS and ARGV Redis's globals).
const LIBRARY_STATE: &str = "local KEYS, ARGV, NOW, V1 = {}, {}, 0, false\n";

impl Library {
    pub fn new(policy: &CartPolicy) -> Self {
        let mut sections = PRELUDE.split(HELPER_MARK);
        let core = sections.next().unwrap_or_default();
        let mut code = LIBRARY_STATE.to_owned();
        let mut per_call = 0;
        for line in core.split_inclusive('\n') {
            if line.starts_with("local NOW = ") || line.starts_with("local V1 = ") {
                per_call += 1;
            } else {
                code.push_str(line);
            }
        }
        assert_eq!(per_call, 2, "the prelude sets NOW and V1 per call");
        for section in sections {
            code.push_str(section.split_once('\n').map_or("", |(_, code)| code));
        }
        for script in Script::ALL {
            let (helpers, body) = hoisted(script.row().body);
            let flags: Vec<String> = script.flags().iter().map(|f| format!("'{f}'")).collect();
            code.push_str(&format!(
                "do\n{helpers}local function body()\n{body}end\n\
                 redis.register_function{{function_name = '@_{name}', callback = function(keys, args)\n\
                 \x20 KEYS, ARGV, NOW, V1 = keys, args, tonumber(args[1], 16), false\n\
                 \x20 return once(body)\n\
                 end, flags = {{{flags}}}}}\nend\n",
                name = script.name(),
                flags = flags.join(", "),
            ));
        }
        let code = write_in(&code, &constants(policy));
        let digest = sha2::Sha256::digest(code.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("cart_{hash}");
        let source = format!(
            "#!lua name={name}\n{}",
            code.replace("function_name = '@_", &format!("function_name = '{name}_"))
        );
        let functions = Script::ALL.map(|script| format!("{name}_{}", script.name()));
        Self {
            name,
            source,
            functions,
        }
    }

    /// The function that runs `script`.
    pub fn function(&self, script: Script) -> &str {
        &self.functions[script.index()]
    }
}

/// A script body's own top-level helpers (each `local function` at the start of a line, up to
/// the next line that is `end`), defined once beside its function in the library, and the rest
/// of the body.
fn hoisted(body: &str) -> (String, String) {
    let (mut helpers, mut rest) = (String::new(), String::new());
    let mut in_helper = false;
    for line in body.split_inclusive('\n') {
        if line.starts_with("local function ") {
            in_helper = true;
        }
        if in_helper {
            helpers.push_str(line);
            in_helper = line.trim_end() != "end";
        } else {
            rest.push_str(line);
        }
    }
    (helpers, rest)
}

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
        // Constants are literals in the code (a request's record lives a day), as text where
        // they are a command's argument.
        assert!(clear.contains("'PX', '86400000')"));
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
    fn the_library_defines_its_helpers_once_and_registers_each_script_with_its_flags() {
        let policy = CartPolicy::default();
        let library = Library::new(&policy);
        let source = &library.source;
        assert_eq!(
            source.lines().next(),
            Some(format!("#!lua name={}", library.name).as_str())
        );
        let shebangs = source.lines().filter(|l| l.starts_with("#!")).count();
        assert_eq!(shebangs, 1);
        // Every helper once, at library level (not inside a function's body).
        for helper in ["fail", "once", "load", "store", "plan_add", "cleared"] {
            let definition = format!("\nlocal function {helper}(");
            assert_eq!(source.matches(&definition).count(), 1, "{helper}");
        }
        // The per-call state is the library's, assigned at each function's entry.
        assert!(source.contains(LIBRARY_STATE));
        assert!(!source.contains("local NOW = tonumber(ARGV[1], 16)"));
        let entries = source
            .matches("KEYS, ARGV, NOW, V1 = keys, args, tonumber(args[1], 16), false")
            .count();
        assert_eq!(entries, Script::ALL.len());
        for script in Script::ALL {
            let function = library.function(script);
            assert_eq!(function, format!("{}_{}", library.name, script.name()));
            let flags: Vec<String> = script.flags().iter().map(|f| format!("'{f}'")).collect();
            let at = source
                .find(&format!("function_name = '{function}'"))
                .unwrap_or_else(|| panic!("{function} is registered"));
            let registration = &source[at..at + source[at..].find("\nend\n").unwrap()];
            assert!(
                registration.ends_with(&format!("end, flags = {{{}}}}}", flags.join(", "))),
                "{registration}"
            );
        }
        // Constants are written in as in the EVAL scripts.
        assert!(source.contains("if expires < NOW + 7776000000 - 77760000 then"));
    }

    #[test]
    fn the_library_name_carries_a_hash_of_its_code() {
        let default = Library::new(&CartPolicy::default());
        let (prefix, hash) = default.name.split_at("cart_".len());
        assert_eq!(prefix, "cart_");
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(Library::new(&CartPolicy::default()).name, default.name);
        // Other code (here another policy written in) is another library, with other functions.
        let other = Library::new(&CartPolicy {
            cart_ttl: std::time::Duration::from_secs(3600),
            ..CartPolicy::default()
        });
        assert_ne!(other.name, default.name);
        assert_ne!(
            other.function(Script::Clear),
            default.function(Script::Clear)
        );
    }

    #[test]
    fn a_bodys_own_helpers_are_hoisted() {
        let (helpers, rest) = hoisted("-- c\nlocal function f(x)\n  return x\nend\nreturn f(1)\n");
        assert_eq!(helpers, "local function f(x)\n  return x\nend\n");
        assert_eq!(rest, "-- c\nreturn f(1)\n");
    }

    #[test]
    fn the_table_names_each_script_after_its_file() {
        for script in Script::ALL {
            assert_eq!(Script::ALL[script.index()], script);
            assert_eq!(script.span_name(true), format!("FCALL {}", script.name()));
            assert_eq!(
                script.span_name(false),
                format!("EVALSHA {}", script.name())
            );
            assert_eq!(script.keys(), CART_KEYS);
        }
        assert_eq!(Script::Get.retry_class(), RetryClass::Always);
        assert!(!Script::Get.mutates() && Script::Clear.mutates());
    }
}
