//! Integration tests: the real `custsync` binary against the in-process sandbox.

mod binding;
mod bulk;
mod caps;
mod cron;
mod data;
mod doubt;
mod fast;
mod faults;
mod formats;
mod guards;
mod history;
mod hostile;
mod input;
mod key;
mod outputs;
mod reports;
mod shop;
mod store;
mod support;
mod sync;
mod walls;
