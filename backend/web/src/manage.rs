//! The managers' pages (`/manage/...`, desktop): the dashboard of today and the last 30 days.
//! Figures come from [`store::Store::dashboard_figures`], summed in the database.

use crate::chart::{Chart, Kind, Series};
use crate::error::{OrPage, PageError};
use crate::format::{self, day_start_ms, local_day, yuan};
use crate::i18n::Tr;
use crate::session::{Chrome, Manager};
use crate::HostRef;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ledger::{Fen, MealKind};
use store::{DashboardFigures, DashboardQuery, WasteGroup};

/// A plate with at most this much left on it counts as clean.
pub const CLEAN_PLATE_MAX_GRAMS: i64 = 20;
const DAYS: i64 = 30;

pub fn routes() -> Router<HostRef> {
    Router::new().route("/manage", get(dashboard))
}

/// The canteen the pages report on (the first; one canteen per installation today).
async fn first_canteen(host: &HostRef) -> Result<Option<store::Canteen>, store::StoreError> {
    Ok(host.store().list_canteens().await?.into_iter().next())
}

/// The canteen's UTC offset (UTC+8 before a canteen exists).
fn offset_of(canteen: Option<&store::Canteen>) -> i32 {
    canteen.map_or(480, |c| c.utc_offset_minutes)
}

pub async fn canteen_offset(host: &HostRef) -> Result<i32, store::StoreError> {
    Ok(offset_of(first_canteen(host).await?.as_ref()))
}

pub struct Kpi {
    pub label: &'static str,
    pub today: String,
    pub period: String,
}

pub struct ChartView {
    pub id: &'static str,
    pub title: String,
    pub svg: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub c: Chrome,
    pub kpis: Vec<Kpi>,
    pub charts: Vec<ChartView>,
    pub empty: bool,
    pub clean_rule: &'static str,
}

/// One day's figures, gathered from the store's lists.
#[derive(Clone, Default)]
struct Day {
    meals: [i64; 4],
    revenue: i64,
    subsidy: i64,
    top_ups: i64,
    top_up_count: i64,
    refunds: i64,
    refund_count: i64,
    plates: i64,
    grams: i64,
    clean: i64,
}

fn meal_index(m: Option<MealKind>) -> usize {
    match m {
        Some(MealKind::Breakfast) => 0,
        Some(MealKind::Lunch) => 1,
        Some(MealKind::Dinner) => 2,
        None => 3,
    }
}

fn per_day(f: &DashboardFigures, first: i64) -> Vec<Day> {
    let mut days = vec![Day::default(); DAYS as usize];
    let at = |day: i64| {
        let i = day - first;
        (0..DAYS).contains(&i).then_some(i as usize)
    };
    for m in &f.meals {
        if let Some(i) = at(m.day) {
            days[i].meals[meal_index(m.meal)] += m.meals;
            days[i].revenue += m.revenue.0;
            days[i].subsidy += m.subsidy.0;
        }
    }
    for t in &f.top_ups {
        if let Some(i) = at(t.day) {
            days[i].top_ups += t.amount.0;
            days[i].top_up_count += t.count;
        }
    }
    for r in &f.refunds {
        if let Some(i) = at(r.day) {
            days[i].refunds += r.amount.0;
            days[i].refund_count += r.count;
        }
    }
    for w in &f.waste {
        if let Some(i) = at(w.day) {
            days[i].plates += w.plates;
            days[i].grams += w.grams;
            days[i].clean += w.clean_plates;
        }
    }
    days
}

fn sum(days: &[Day]) -> Day {
    days.iter().fold(Day::default(), |mut a, d| {
        for k in 0..4 {
            a.meals[k] += d.meals[k];
        }
        a.revenue += d.revenue;
        a.subsidy += d.subsidy;
        a.top_ups += d.top_ups;
        a.top_up_count += d.top_up_count;
        a.refunds += d.refunds;
        a.refund_count += d.refund_count;
        a.plates += d.plates;
        a.grams += d.grams;
        a.clean += d.clean;
        a
    })
}

fn per_plate(d: &Day, t: &Tr) -> String {
    if d.plates == 0 {
        "—".into()
    } else {
        format!("{:.0} {}", d.grams as f64 / d.plates as f64, t.grams)
    }
}

fn clean_share(d: &Day) -> String {
    if d.plates == 0 {
        "—".into()
    } else {
        format!("{:.0}%", 100.0 * d.clean as f64 / d.plates as f64)
    }
}

fn kpis(today: &Day, month: &Day, t: &'static Tr) -> Vec<Kpi> {
    let money_count =
        |amount: i64, n: i64| format!("{} ({} {})", yuan(Fen(amount)), n, t.count_unit);
    vec![
        Kpi {
            label: t.meals_served,
            today: format::count(today.meals.iter().sum()),
            period: format::count(month.meals.iter().sum()),
        },
        Kpi {
            label: t.revenue,
            today: yuan(Fen(today.revenue)),
            period: yuan(Fen(month.revenue)),
        },
        Kpi {
            label: t.subsidy_used,
            today: yuan(Fen(today.subsidy)),
            period: yuan(Fen(month.subsidy)),
        },
        Kpi {
            label: t.top_ups,
            today: yuan(Fen(today.top_ups)),
            period: money_count(month.top_ups, month.top_up_count),
        },
        Kpi {
            label: t.refunds,
            today: yuan(Fen(today.refunds)),
            period: money_count(month.refunds, month.refund_count),
        },
        Kpi {
            label: t.waste_per_plate,
            today: per_plate(today, t),
            period: per_plate(month, t),
        },
        Kpi {
            label: t.clean_share,
            today: clean_share(today),
            period: clean_share(month),
        },
    ]
}

fn charts(
    days: &[Day],
    first: i64,
    t: &'static Tr,
    target: Option<i64>,
    departments: &[WasteGroup],
    meals_weighed: &[WasteGroup],
) -> Vec<ChartView> {
    let labels: Vec<String> = (0..DAYS).map(|i| format::short_day(first + i)).collect();
    let iso: Vec<String> = (0..DAYS).map(|i| format::iso_day(first + i)).collect();
    let meal_names = [t.breakfast, t.lunch, t.dinner, t.other_meal];
    let meal_colours = ["#f2b134", "#2f8f6a", "#3b6fb6", "#9aa3ad"];
    // Only meal periods that occur get a series (no empty "Other" in the legend).
    let used: Vec<usize> = (0..4)
        .filter(|k| days.iter().any(|d| d.meals[*k] > 0) || *k < 3)
        .collect();
    let meals = Chart {
        id: "meals",
        title: t.chart_meals.into(),
        labels: labels.clone(),
        series: used
            .iter()
            .map(|k| Series {
                name: meal_names[*k].into(),
                colour: meal_colours[*k],
                values: days.iter().map(|d| d.meals[*k] as f64).collect(),
            })
            .collect(),
        kind: Kind::StackedBars,
        y_max: None,
        y_format: |v| format!("{v:.0}"),
    };
    let money = Chart {
        id: "money",
        title: t.chart_money.into(),
        labels: labels.clone(),
        series: vec![
            Series {
                name: t.subsidy.into(),
                colour: "#f2b134",
                values: days.iter().map(|d| d.subsidy as f64 / 100.0).collect(),
            },
            Series {
                name: t.cash.into(),
                colour: "#2f8f6a",
                values: days
                    .iter()
                    .map(|d| (d.revenue - d.subsidy) as f64 / 100.0)
                    .collect(),
            },
        ],
        kind: Kind::StackedBars,
        y_max: None,
        y_format: |v| format!("¥{v:.0}"),
    };
    // The trend as a line (a day nobody was weighed breaks it), with the manager's target as a
    // second, flat line when one is set.
    let mut waste_series = vec![Series {
        name: t.waste_per_plate.into(),
        colour: "#c8553d",
        values: days
            .iter()
            .map(|d| {
                if d.plates == 0 {
                    f64::NAN
                } else {
                    d.grams as f64 / d.plates as f64
                }
            })
            .collect(),
    }];
    if let Some(g) = target {
        waste_series.push(Series {
            name: format!("{} {g} g", t.waste_target),
            colour: "#5b6670",
            values: vec![g as f64; days.len()],
        });
    }
    let waste = Chart {
        id: "waste",
        title: t.chart_waste.into(),
        labels: labels.clone(),
        series: waste_series,
        kind: Kind::Lines,
        y_max: None,
        y_format: |v| format!("{v:.0} g"),
    };
    let clean = Chart {
        id: "clean",
        title: t.chart_clean.into(),
        labels,
        series: vec![Series {
            name: t.clean_share.into(),
            colour: "#2f8f6a",
            values: days
                .iter()
                .map(|d| {
                    if d.plates == 0 {
                        f64::NAN
                    } else {
                        100.0 * d.clean as f64 / d.plates as f64
                    }
                })
                .collect(),
        }],
        kind: Kind::Lines,
        y_max: Some(100.0),
        y_format: |v| format!("{v:.0}%"),
    };
    let rows = |f: &dyn Fn(&Day) -> Vec<String>| -> Vec<Vec<String>> {
        days.iter()
            .zip(&iso)
            .map(|(d, day)| {
                let mut r = vec![day.clone()];
                r.extend(f(d));
                r
            })
            .collect()
    };
    let mut meal_head = vec![t.date.to_string()];
    meal_head.extend(used.iter().map(|k| meal_names[*k].to_string()));
    meal_head.push(t.total.into());
    vec![
        ChartView {
            id: meals.id,
            title: meals.title.clone(),
            svg: meals.svg(),
            head: meal_head,
            rows: rows(&|d| {
                let mut r: Vec<String> = used.iter().map(|k| d.meals[*k].to_string()).collect();
                r.push(d.meals.iter().sum::<i64>().to_string());
                r
            }),
        },
        ChartView {
            id: money.id,
            title: money.title.clone(),
            svg: money.svg(),
            head: vec![
                t.date.into(),
                t.revenue.into(),
                t.subsidy_used.into(),
                t.top_ups.into(),
                t.refunds.into(),
            ],
            rows: rows(&|d| {
                vec![
                    yuan(Fen(d.revenue)),
                    yuan(Fen(d.subsidy)),
                    yuan(Fen(d.top_ups)),
                    yuan(Fen(d.refunds)),
                ]
            }),
        },
        ChartView {
            id: waste.id,
            title: waste.title.clone(),
            svg: waste.svg(),
            head: vec![
                t.date.into(),
                t.plates.into(),
                t.waste_total.into(),
                t.waste_per_plate.into(),
            ],
            rows: rows(&|d| {
                vec![
                    d.plates.to_string(),
                    format!("{} {}", format::count(d.grams), t.grams),
                    per_plate(d, t),
                ]
            }),
        },
        ChartView {
            id: clean.id,
            title: clean.title.clone(),
            svg: clean.svg(),
            head: vec![t.date.into(), t.plates.into(), t.clean_share.into()],
            rows: rows(&|d| vec![d.plates.to_string(), clean_share(d)]),
        },
        group_chart(
            "departments",
            t.chart_departments,
            t.department,
            departments,
            &|g| {
                if g.trim().is_empty() {
                    t.no_department.to_string()
                } else {
                    g.to_string()
                }
            },
            t,
        ),
        group_chart(
            "meal-waste",
            t.chart_meal_waste,
            t.meal,
            meals_weighed,
            &|g| match g.parse::<MealKind>().ok() {
                Some(MealKind::Breakfast) => t.breakfast.to_string(),
                Some(MealKind::Lunch) => t.lunch.to_string(),
                Some(MealKind::Dinner) => t.dinner.to_string(),
                None => t.other_meal.to_string(),
            },
            t,
        ),
    ]
}

/// Grams per plate over the month per group (a department, a meal period): bars for the
/// twelve groups that waste most, in the order given, and a table of every group.
fn group_chart(
    id: &'static str,
    title: &'static str,
    group_head: &'static str,
    groups: &[WasteGroup],
    name: &dyn Fn(&str) -> String,
    t: &'static Tr,
) -> ChartView {
    let per_plate = |g: &WasteGroup| g.grams as f64 / g.plates.max(1) as f64;
    let shown = &groups[..groups.len().min(12)];
    let chart = Chart {
        id,
        title: title.into(),
        labels: shown.iter().map(|g| name(&g.group)).collect(),
        series: vec![Series {
            name: t.waste_per_plate.into(),
            colour: "#c8553d",
            values: shown.iter().map(per_plate).collect(),
        }],
        kind: Kind::StackedBars,
        y_max: None,
        y_format: |v| format!("{v:.0} g"),
    };
    ChartView {
        id,
        title: chart.title.clone(),
        svg: chart.svg(),
        head: vec![
            group_head.into(),
            t.plates.into(),
            t.waste_per_plate.into(),
            t.clean_share.into(),
        ],
        rows: groups
            .iter()
            .map(|g| {
                vec![
                    name(&g.group),
                    g.plates.to_string(),
                    format!("{:.0} {}", per_plate(g), t.grams),
                    format!(
                        "{:.0}%",
                        100.0 * g.clean_plates as f64 / g.plates.max(1) as f64
                    ),
                ]
            })
            .collect(),
    }
}

pub async fn dashboard(
    State(host): State<HostRef>,
    Manager(v): Manager,
) -> Result<DashboardPage, PageError> {
    let lang = v.lang;
    let t = lang.tr();
    let canteen = first_canteen(&host).await.or_page(lang)?;
    let offset = offset_of(canteen.as_ref());
    let today = local_day(host.now_ms(), offset);
    let first = today - (DAYS - 1);
    let figures = host
        .store()
        .dashboard_figures(DashboardQuery {
            from_ms: day_start_ms(first, offset),
            to_ms: day_start_ms(today + 1, offset),
            utc_offset_minutes: offset,
            clean_plate_max_grams: CLEAN_PLATE_MAX_GRAMS,
        })
        .await
        .or_page(lang)?;
    let days = per_day(&figures, first);
    let month = sum(&days);
    let empty = month.meals.iter().sum::<i64>() == 0 && month.plates == 0;
    Ok(DashboardPage {
        c: v.chrome("dashboard"),
        kpis: kpis(&days[days.len() - 1], &month, t),
        charts: charts(
            &days,
            first,
            t,
            canteen.and_then(|c| c.waste_target_grams),
            &figures.waste_by_department,
            &figures.waste_by_meal,
        ),
        empty,
        clean_rule: t.clean_plate_rule,
    })
}
