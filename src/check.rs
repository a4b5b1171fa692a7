//! `custsync check`: connect as a sync would and report, changing nothing, so that a
//! configuration is tested before a run depends on it: whether the state store may be used
//! with the target, whether the token works and the endpoint base is right (the shop's
//! customer count is read), and the shop's model, printed readably.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{CheckConfig, Target};
use crate::connect::{self, ConnectError};
use crate::retry::Retrier;
use crate::shop::{self, FetchError, Model, Rules};
use crate::state::{StateError, Store};
use crate::throttle::Throttle;

/// Items of a list printed before "and N more".
const SHOWN: usize = 12;

/// Runs the check; returns whether all is well. What it finds is printed as it goes; a
/// problem is an error line on stderr.
pub async fn run(cfg: &CheckConfig) -> Result<bool, ConnectError> {
    let mut well = true;
    let mut problem = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("error: {what}: {e}");
        well = false;
    };
    match binding(cfg) {
        Ok(line) => println!("state:      {line}"),
        Err(e) => problem("state", &e),
    }
    let throttle = Arc::new(Throttle::new(cfg.rate));
    let (sandbox, client) = connect::connect(&cfg.connect, 2, throttle).await?;
    let client = client.expect("check's configuration has credentials");
    let retrier = Retrier::new(cfg.retry, CancellationToken::new());
    match shop::customer_count(&client, &retrier).await {
        Ok(count) => {
            println!("token:      works ({})", credentials(cfg));
            println!(
                "base:       {} answers as Commerce's REST API",
                client.endpoint()
            );
            println!("customers:  {count} in the shop");
            match shop::fetch(&client, &retrier).await {
                Ok(model) => print!("{}", describe(&model, &Rules::new(&cfg.regions_optional))),
                Err(e) => problem("the shop's model", &e),
            }
        }
        Err(e @ FetchError::WrongBase { .. }) => problem("base", &e),
        Err(e) if e.is_auth() => problem("token", &e),
        Err(e) => problem("customers", &e),
    }
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }
    if well {
        println!("all well: a sync to this target can start");
    }
    Ok(well)
}

/// What the state store says of the target, if there is a store: the check opens none that
/// does not exist yet (opening creates it).
fn binding(cfg: &CheckConfig) -> Result<String, StateError> {
    let dir = &cfg.connect.state_dir;
    if !dir.join("db").exists() {
        return Ok(format!(
            "{} does not exist yet; the first sync creates it",
            dir.display()
        ));
    }
    let store = Store::open(dir)?;
    let target = connect::admit(&store, &cfg.connect, true, false)?;
    Ok(match store.binding()? {
        Some(_) => format!("{} is bound to {target}", dir.display()),
        None => format!(
            "{} is not bound yet; the first mapping a sync records binds it to {target}",
            dir.display()
        ),
    })
}

/// How the run authenticates, without any secret.
fn credentials(cfg: &CheckConfig) -> String {
    match &cfg.connect.target {
        Target::Sandbox => "the embedded sandbox's IMS".into(),
        Target::Remote(r) => match &r.credentials {
            Some(crate::api::Credentials::Token(_)) => "CUSTSYNC_ACCESS_TOKEN".into(),
            Some(crate::api::Credentials::Ims { client_id, .. }) => {
                format!("IMS, client id {client_id}")
            }
            None => "no credentials".into(),
        },
    }
}

/// The model, readably.
pub fn describe(model: &Model, rules: &Rules) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("websites:   {}", model.websites.len()));
    for w in &model.websites {
        let views = shown(
            model
                .store_views_of(w.id)
                .map(|s| format!("{} {} \"{}\"", s.id, s.code, s.name)),
        );
        line(format!(
            "  {} {} \"{}\": store views {views}",
            w.id, w.code, w.name
        ));
    }
    line(format!("customer groups: {}", model.groups.len()));
    line(format!(
        "  {}",
        shown(model.groups.iter().map(|g| format!("{} {}", g.id, g.code)))
    ));
    line("allowed countries:".into());
    let mut first: Option<(u32, &std::collections::BTreeSet<String>)> = None;
    for w in &model.websites {
        let allowed = model.allowed.get(&w.id);
        let text = match (first, allowed) {
            (Some((id, list)), Some(this)) if list == this => format!("the same as website {id}"),
            (_, Some(list)) => format!("{}: {}", list.len(), shown(list.iter())),
            (_, None) => "none".into(),
        };
        if first.is_none() {
            first = allowed.map(|a| (w.id, a));
        }
        line(format!("  website {} {}: {text}", w.id, w.code));
    }
    let listed: Vec<_> = model
        .countries
        .values()
        .filter(|c| !c.regions.is_empty())
        .collect();
    if !listed.is_empty() {
        line("regions (give one by code, name or id):".into());
    }
    for c in listed {
        let need = if rules.region_required(c) {
            "required"
        } else {
            "optional (--regions-optional)"
        };
        let regions = shown(c.regions.iter().map(|r| format!("{} {}", r.code, r.name)));
        line(format!(
            "  {} {}: {} regions, {need}: {regions}",
            c.id,
            c.name,
            c.regions.len()
        ));
    }
    line(format!(
        "custom customer attributes: {}",
        model.custom_attributes.len()
    ));
    for a in &model.custom_attributes {
        let required = if a.required { ", required" } else { "" };
        line(format!(
            "  {} \"{}\" ({}{required})",
            a.code, a.label, a.input
        ));
    }
    out
}

/// The first [`SHOWN`] items, comma-separated, and how many more.
fn shown<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    shop::listed_up_to(items, SHOWN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::tests::model;

    #[test]
    fn the_model_printed() {
        let text = describe(&model(), &Rules::new(&["DE".to_owned()]));
        let want = [
            "websites:   2",
            "  1 base \"Main Website\": store views 1 default \"Default Store View\"",
            "  2 second \"Second Website\": store views 2 second \"Second Store View\"",
            "customer groups: 3",
            "  0 NOT LOGGED IN, 1 General, 2 Wholesale",
            "allowed countries:",
            "  website 1 base: 3: DE, SE, US",
            "  website 2 second: 1: SE",
            "regions (give one by code, name or id):",
            "  DE Germany: 1 regions, optional (--regions-optional): NDS Niedersachsen",
            "  US United States: 3 regions, required: AL Alabama, CA California, NY New York",
            "custom customer attributes: 1",
            "  loyalty_no \"Loyalty number\" (text)",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        assert_eq!(
            shown(0..14),
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 2 more"
        );
    }
}
