//! Integration tests: the real `custsync` binary against the in-process sandbox.

mod cron;
mod data;
mod faults;
mod guards;
mod hostile;
mod input;
mod support;
mod sync;
mod walls;
