//! The Lua scripts, each prefixed with the shared prelude and built once per store.
//! `redis::Script` calls them by SHA (EVALSHA) and loads them again on NOSCRIPT.

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The Lua source of a script: the header field list the codec decodes, the prelude, and the
/// body as a function that the prelude's `once` runs at most once per request id.
pub fn source(body: &str) -> String {
    let fields: Vec<String> = super::codec::META_FIELDS
        .iter()
        .map(|f| format!("'{f}'"))
        .collect();
    format!(
        "local META_FIELDS = {{{}}}\n{PRELUDE}\nreturn once(function()\n{body}\nend)\n",
        fields.join(", ")
    )
}

fn script(body: &str) -> Script {
    Script::new(&source(body))
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
    pub fn new() -> Self {
        Self {
            create: script(include_str!("lua/create.lua")),
            get: script(include_str!("lua/get.lua")),
            add_items: script(include_str!("lua/add_items.lua")),
            update_items: script(include_str!("lua/update_items.lua")),
            apply_coupon: script(include_str!("lua/apply_coupon.lua")),
            clear: script(include_str!("lua/clear.lua")),
            remove: script(include_str!("lua/remove.lua")),
            delete: script(include_str!("lua/delete.lua")),
        }
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
