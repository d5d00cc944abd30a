//! `cart-service`: parse settings, start tracing, serve until SIGINT/SIGTERM.

use clap::Parser;

/// mimalloc: the request path allocates many small, short-lived buffers, which glibc's
/// allocator served at a quarter of the service's CPU under load.
#[global_allocator]
static ALLOCATOR: WordAligned = WordAligned;

/// mimalloc through its plain entry points for what needs no more than a word's alignment
/// (nearly every allocation), through `mimalloc::MiMalloc` (its aligned ones) otherwise.
/// `MiMalloc` asks for the alignment every time, and mimalloc's aligned path checks the block
/// it finds and falls back to a generic one for blocks past its small sizes, which costs a
/// request some thousand instructions more than `mi_malloc` does.
struct WordAligned;

// The mimalloc library the `mimalloc` crate links in (its C API, `mimalloc.h`).
unsafe extern "C" {
    fn mi_malloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_zalloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_realloc(p: *mut std::ffi::c_void, newsize: usize) -> *mut std::ffi::c_void;
}

/// Every block `mi_malloc` returns is aligned to a word at least: its size classes are whole
/// words.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each call goes to mimalloc, whose blocks meet the layout's alignment (a word by
// `mi_malloc`, any other by `MiMalloc`'s aligned calls); all are freed by `mi_free`.
unsafe impl std::alloc::GlobalAlloc for WordAligned {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { mi_malloc(layout.size()).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { mi_zalloc(layout.size()).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

use cart_service::app::Application;
use cart_service::config::{Cli, Settings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let telemetry = cart_service::telemetry::init();
    let code = serve().await;
    // Export the spans still batched before the process ends.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve() -> std::process::ExitCode {
    let settings = match Settings::from_cli(Cli::parse()) {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
    };
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    match app.run_until(cart_service::app::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
