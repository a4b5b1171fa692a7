//! Integration tests: the real `custsync` binary against the in-process sandbox.

mod binding;
mod data;
mod faults;
mod hostile;
mod input;
mod shop;
mod support;
mod sync;
mod walls;
