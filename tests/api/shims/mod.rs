//! The five compatibility shims over real HTTP, each checked against its seed and then over
//! gRPC, plus the HTTP edge they share.

mod amazon;
mod edge;
mod fabric_xm;
mod fuzz;
mod stateset;
mod vtex;
mod zaui;
