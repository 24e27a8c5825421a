//! Copies the [`UiModel`] into the Slint window's `Ui` global. The only place Rust sets what
//! the screens show; the screens decide nothing.

use std::time::Instant;

use slint::{ComponentHandle, ModelRc, SharedString, VecModel};

use crate::model::{NotMe, UiModel};
use crate::{AppWindow, StaffRow, Ui};

fn grams(g: Option<f64>) -> SharedString {
    g.map(|g| format!("{g:.0}").into()).unwrap_or_default()
}

pub fn apply(app: &AppWindow, m: &UiModel, now: Instant) {
    let ui = app.global::<Ui>();
    ui.set_screen(m.screen.id().into());
    ui.set_portrait(m.portrait);
    ui.set_language(m.language.as_str().into());
    ui.set_mode(m.mode.id().into());
    ui.set_canteen_name(m.canteen_name.as_str().into());
    ui.set_clock(m.clock.as_str().into());
    ui.set_meal(m.meal.as_str().into());
    ui.set_meal_price(m.meal_price.as_str().into());
    ui.set_online(m.online);
    ui.set_camera_ok(m.camera_ok);
    ui.set_scale_ok(m.scale_ok);
    ui.set_fault(m.fault.map(|f| f.id()).unwrap_or("").into());
    ui.set_fault_detail(m.fault_detail.as_str().into());
    match &m.face {
        Some(f) => {
            ui.set_face_visible(true);
            ui.set_face_x(f.x);
            ui.set_face_y(f.y);
            ui.set_face_w(f.w);
            ui.set_face_h(f.h);
            ui.set_hint(f.hint.as_str().into());
        }
        None => {
            ui.set_face_visible(false);
            ui.set_hint("".into());
        }
    }
    let d = &m.diner;
    ui.set_diner_name(d.name.as_str().into());
    ui.set_diner_department(d.department.as_str().into());
    ui.set_amount(d.amount.as_str().into());
    ui.set_subsidy_used(d.subsidy_used.as_str().into());
    ui.set_balance(d.balance.as_str().into());
    ui.set_paid_offline(d.offline);
    ui.set_via_pay_code(d.via_pay_code);
    ui.set_seconds_left(m.seconds_left(now) as i32);
    ui.set_not_me_state(
        match m.not_me {
            NotMe::None => "none",
            NotMe::Pending => "pending",
            NotMe::Done => "done",
        }
        .into(),
    );
    ui.set_decline_reason(m.decline_reason.as_str().into());
    ui.set_paycode_state(
        if m.paycode_reading {
            "reading"
        } else {
            "scanning"
        }
        .into(),
    );
    let r = &m.ret;
    ui.set_weight_g(r.weight_g as i32);
    ui.set_tare_g(r.tare_g as i32);
    ui.set_net_g(r.net_g as i32);
    ui.set_has_result(r.has_result);
    ui.set_clean_plate(r.clean_plate());
    ui.set_person_average(grams(r.person_average_g));
    ui.set_canteen_average(grams(r.canteen_average_g));
    ui.set_scale_message(r.scale_message.as_str().into());
}

/// The staff list of the desk's search step.
pub fn set_staff(app: &AppWindow, staff: &[wire::Staff]) {
    let rows: Vec<StaffRow> = staff
        .iter()
        .map(|s| StaffRow {
            id: s.id as i32,
            name: s.name.as_str().into(),
            employee_no: s.employee_no.as_str().into(),
            department: s.department.as_str().into(),
        })
        .collect();
    app.global::<Ui>()
        .set_desk_staff(ModelRc::new(VecModel::from(rows)));
}
