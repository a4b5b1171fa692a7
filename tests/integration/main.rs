//! Integration tests: the real `custsync` binary against the in-process sandbox.

mod data;
mod doubt;
mod faults;
mod hostile;
mod input;
mod store;
mod support;
mod sync;
mod walls;
