//! Text output: the `list` table, the `status` tree and the `watch` screen, coloured only when
//! the caller says so (a terminal without `NO_COLOR`).

use std::fmt::Write as _;

use crate::view::{ClusterRow, GroupView, InstanceView, StatusView, progress_line};

/// Colours of the output, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Whether to write ANSI colours.
    pub colour: bool,
}

impl Style {
    /// No colours: for pipes, files and tests.
    pub const PLAIN: Style = Style { colour: false };

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }

    fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let width = widths.get(i).copied().unwrap_or_default();
                format!("{c:<width$}")
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// A duration in seconds the way kubectl shows ages: `45s`, `12m`, `5h`, `3d`.
pub fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The `list` table.
pub fn list(rows: &[ClusterRow], all_namespaces: bool) -> String {
    if rows.is_empty() {
        return "No TiDB clusters found.\n".to_string();
    }
    let mut header = vec![];
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "VERSION",
        "COMPONENTS",
        "AVAILABLE",
        "READY",
        "PROGRESSING",
        "AGE",
    ]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![];
            if all_namespaces {
                row.push(r.namespace.clone());
            }
            let components: Vec<String> = r
                .components
                .iter()
                .map(|c| format!("{} {}/{}", c.component, c.ready, c.desired))
                .collect();
            let or_dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            row.extend([
                if r.paused {
                    format!("{} (paused)", r.name)
                } else {
                    r.name.clone()
                },
                or_dash(&r.versions.join(",")),
                or_dash(&components.join(" ")),
                or_dash(&r.available),
                or_dash(&r.ready),
                or_dash(&r.progressing),
                age(r.age_seconds),
            ]);
            row
        })
        .collect();
    table(&header, &cells)
}

fn mark(style: Style, ok: bool, yes: &str, no: &str) -> String {
    if ok { style.good(yes) } else { style.bad(no) }
}

fn instance_line(style: Style, i: &InstanceView) -> String {
    let mut parts = vec![
        style.bold(&i.name),
        i.version.clone(),
        mark(style, i.ready, "Ready", "NotReady"),
        if i.up_to_date {
            "up-to-date".to_string()
        } else {
            style.warn("outdated")
        },
    ];
    if i.pd_leader == Some(true) {
        parts.push(style.good("leader"));
    }
    if let Some(id) = &i.id {
        parts.push(format!(
            "{} {id}",
            if i.kind == "PD" { "member" } else { "store" }
        ));
    }
    if let Some(state) = &i.store_state {
        parts.push(if state == "Serving" {
            state.clone()
        } else {
            style.warn(state)
        });
    }
    parts.join("  ")
}

fn group_line(style: Style, g: &GroupView) -> String {
    let version = if g.version == g.target_version || g.version.is_empty() {
        g.target_version.clone()
    } else {
        style.warn(&format!("{} -> {}", g.version, g.target_version))
    };
    let ready = format!("ready {}/{}", g.ready, g.desired);
    let updated = format!("updated {}/{}", g.updated, g.desired);
    format!(
        "{} {}  {version}  {}  {}",
        g.kind,
        style.bold(&g.name),
        mark(style, g.ready == g.desired, &ready, &ready),
        mark(style, g.updated == g.desired, &updated, &updated),
    )
}

/// The `status` tree, then the problems and the recent Warning Events.
pub fn status(style: Style, view: &StatusView) -> String {
    let mut out = String::new();
    let health = mark(style, view.healthy, "healthy", "NOT HEALTHY");
    let _ = writeln!(
        out,
        "Cluster {}/{}  {health}{}",
        view.namespace,
        style.bold(&view.name),
        if view.paused {
            format!("  {}", style.warn("PAUSED"))
        } else {
            String::new()
        }
    );
    let conditions: Vec<String> = view
        .conditions
        .iter()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    if !conditions.is_empty() {
        let _ = writeln!(out, "  conditions: {}", conditions.join(" "));
    }
    if !view.pd.is_empty() {
        let _ = writeln!(out, "  PD: {}  cluster ID: {}", view.pd, view.cluster_id);
    }
    let _ = writeln!(out, "  upgrade order: {}", view.upgrade_order);
    for (gi, g) in view.groups.iter().enumerate() {
        let last_group = gi + 1 == view.groups.len();
        let (branch, stem) = if last_group {
            ("└─", "   ")
        } else {
            ("├─", "│  ")
        };
        let _ = writeln!(out, "{branch} {}", group_line(style, g));
        for (ii, i) in g.instances.iter().enumerate() {
            let last = ii + 1 == g.instances.len();
            let (branch, inner) = if last {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            let _ = writeln!(out, "{stem}{branch} {}", instance_line(style, i));
            match &i.pod {
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "{stem}{inner}  Pod {} {} {}{}{}",
                        p.name,
                        if p.ready {
                            style.good(&p.phase)
                        } else {
                            style.bad(&p.phase)
                        },
                        if p.node.is_empty() {
                            "unscheduled"
                        } else {
                            "on"
                        },
                        if p.node.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", p.node)
                        },
                        if p.restarts > 0 {
                            format!("  restarts {}", p.restarts)
                        } else {
                            String::new()
                        }
                    );
                }
                None => {
                    let _ = writeln!(out, "{stem}{inner}  Pod {}", style.bad("missing"));
                }
            }
            for v in &i.volumes {
                let _ = writeln!(out, "{stem}{inner}  PVC {} {} {}", v.name, v.size, v.phase);
            }
        }
    }
    if view.problems.is_empty() {
        let _ = writeln!(out, "\nNo condition is out of order.");
    } else {
        let _ = writeln!(out, "\n{}", style.bold("Not as it should be:"));
        for p in &view.problems {
            let c = &p.condition;
            let _ = writeln!(
                out,
                "  {} {}={} {}{}",
                p.object,
                c.type_,
                style.bad(&c.status),
                c.reason,
                if c.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.message)
                }
            );
        }
    }
    if !view.events.is_empty() {
        let _ = writeln!(out, "\n{}", style.bold("Recent Warning Events:"));
        for e in &view.events {
            let _ = writeln!(
                out,
                "  {} {} {} (x{}): {}",
                e.last_seen, e.object, e.reason, e.count, e.message
            );
        }
    }
    if let Some(pd) = &view.pd_view {
        let _ = writeln!(
            out,
            "\n{}\n  leader: {}  members: {}",
            style.bold("PD's own view:"),
            if pd.leader.is_empty() {
                style.bad("none")
            } else {
                pd.leader.clone()
            },
            pd.members.join(", ")
        );
        for s in &pd.stores {
            let _ = writeln!(
                out,
                "  store {} {} {}  leaders {}  regions {}",
                s.id,
                s.address,
                if s.state == pd_client::STATE_UP {
                    s.state.clone()
                } else {
                    style.warn(&s.state)
                },
                s.leader_count,
                s.region_count
            );
        }
    }
    if let Some(error) = &view.pd_view_error {
        let _ = writeln!(out, "\nPD's own view: not readable: {error}");
    }
    for kind in &view.unreadable {
        let _ = writeln!(out, "(not allowed to read {kind}; not shown)");
    }
    out
}

/// A bar of `done` out of `total`, `width` cells wide.
pub fn bar(done: i32, total: i32, width: usize) -> String {
    let filled = if total <= 0 {
        width
    } else {
        (usize::try_from(done.clamp(0, total)).unwrap_or_default() * width)
            / usize::try_from(total).unwrap_or(1)
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// The `watch` screen on a terminal: a progress bar per group and what it waits for.
pub fn watch_screen(style: Style, view: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cluster {}/{}  upgrade order: {}\n",
        view.namespace, view.name, view.upgrade_order
    );
    for g in &view.groups {
        let _ = writeln!(
            out,
            "{:<12} updated {} {}/{}  ready {} {}/{}",
            format!("{}/{}", g.component, g.name),
            bar(g.updated, g.desired, 20),
            g.updated,
            g.desired,
            bar(g.ready, g.desired, 20),
            g.ready,
            g.desired
        );
        let line = progress_line(g);
        if let Some((_, wait)) = line.split_once(" waiting: ") {
            let _ = writeln!(
                out,
                "             {}",
                style.warn(&format!("waiting: {wait}"))
            );
        }
    }
    out
}
