//! Containers: where their cgroups are (`cgroup`), what their cgroup files say (`parse`), and
//! their names and images from the Docker-compatible API (`metadata`). The `containers`
//! collector (`crate::collector::containers`) puts these together.

pub mod cgroup;
pub mod metadata;
pub mod parse;
