//! The enrolment desk's flow behind its screens: a manager signs in (`kiosk::desk::Desk`),
//! finds the staff member, records consent, captures three good templates (each a capture
//! command to the kiosk, whose pipeline answers with `TemplateCaptured`), is warned when a
//! capture already matches someone else, and saves them. HTTP calls run on a worker thread;
//! their results come back to the UI thread through the event loop.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use kiosk::desk::Desk;
use kiosk::event::KioskEvent;
use kiosk::frontend::Command;
use slint::ComponentHandle;

use crate::{AppWindow, Ui};

/// Templates captured per person.
pub const TEMPLATES: usize = 3;

pub struct DeskController {
    backend_url: String,
    session: Option<Arc<Desk>>,
    staff: Vec<wire::Staff>,
    person: Option<wire::Staff>,
    captured: Vec<Vec<f32>>,
    commands: Sender<Command>,
}

/// Runs `work` off the UI thread with the desk marked busy, then `done` on the UI thread.
fn background<T: Send + 'static>(
    app: &AppWindow,
    work: impl FnOnce() -> T + Send + 'static,
    done: impl FnOnce(&AppWindow, T) + Send + 'static,
) {
    app.global::<Ui>().set_desk_busy(true);
    crate::app::off_ui_thread(app, work, move |app, result| {
        app.global::<Ui>().set_desk_busy(false);
        done(app, result);
    });
}

/// Says what went wrong as a kind the screen words in its language (`Ui.desk-error-text`).
fn fail(app: &AppWindow, e: &kiosk::api::ApiError) {
    use kiosk::api::ApiError;
    let (kind, detail) = match e {
        ApiError::NotSent(_) | ApiError::NoAnswer(_) => ("unreachable", String::new()),
        ApiError::Status { status: 401, .. } => ("signin", String::new()),
        ApiError::Status { message, .. } => ("refused", message.clone()),
        other => ("refused", other.to_string()),
    };
    let ui = app.global::<Ui>();
    ui.set_desk_error_detail(detail.into());
    ui.set_desk_error(kind.into());
}

fn step(app: &AppWindow, s: &str) {
    app.global::<Ui>().set_desk_step(s.into());
}

impl DeskController {
    pub fn new(backend_url: String, commands: Sender<Command>) -> DeskController {
        DeskController {
            backend_url,
            session: None,
            staff: Vec::new(),
            person: None,
            captured: Vec::new(),
            commands,
        }
    }

    /// A capture came back from the kiosk's pipeline.
    pub fn on_event(&mut self, app: &AppWindow, ev: &KioskEvent) {
        let KioskEvent::TemplateCaptured {
            embedding,
            matches_staff_id,
            ..
        } = ev
        else {
            return;
        };
        let Some(person) = &self.person else { return };
        let ui = app.global::<Ui>();
        match matches_staff_id {
            Some(other) if *other != person.id => {
                let who = self
                    .staff
                    .iter()
                    .find(|s| s.id == *other)
                    .map(|s| format!("{} ({})", s.name, s.employee_no))
                    .unwrap_or_else(|| format!("#{other}"));
                ui.set_desk_duplicate(who.into());
                // Captures kept before this one may be the same wrong face (the kiosk's gallery
                // can lag a template saved moments ago): start this person's captures again.
                self.captured.clear();
            }
            _ => {
                if self.captured.len() < TEMPLATES {
                    self.captured.push(embedding.clone());
                }
            }
        }
        ui.set_desk_captured(self.captured.len() as i32);
    }
}

fn filter(staff: &[wire::Staff], query: &str) -> Vec<wire::Staff> {
    let q = query.trim().to_lowercase();
    staff
        .iter()
        .filter(|s| {
            s.active
                && (q.is_empty()
                    || s.name.to_lowercase().contains(&q)
                    || s.employee_no.to_lowercase().contains(&q))
        })
        .take(8)
        .cloned()
        .collect()
}

/// Connects the desk screens' callbacks.
pub fn wire(app: &AppWindow, commands: Sender<Command>) {
    let url = app.global::<Ui>().get_backend_url().to_string();
    crate::app::set_desk(DeskController::new(url, commands));
    let ui = app.global::<Ui>();
    let weak = app.as_weak();
    ui.on_desk_sign_in({
        let weak = weak.clone();
        move |user, password| {
            let Some(app) = weak.upgrade() else { return };
            let Some(url) = crate::app::with_desk(|d| d.backend_url.clone()) else {
                return;
            };
            let (user, password) = (user.to_string(), password.to_string());
            background(
                &app,
                move || {
                    let desk = Desk::login(&url, &user, &password)?;
                    let staff = desk.staff()?;
                    Ok::<_, kiosk::api::ApiError>((desk, staff))
                },
                |app, r| match r {
                    Ok((desk, staff)) if desk.who().role == "manager" => {
                        let shown = filter(&staff, "");
                        crate::app::with_desk(|d| {
                            d.session = Some(Arc::new(desk));
                            d.staff = staff;
                        });
                        crate::view::set_staff(app, &shown);
                        app.global::<Ui>().set_desk_error("".into());
                        step(app, "search");
                    }
                    Ok(_) => app.global::<Ui>().set_desk_error("not-manager".into()),
                    Err(e) => fail(app, &e),
                },
            );
        }
    });
    ui.on_desk_search({
        let weak = weak.clone();
        move |query| {
            let Some(app) = weak.upgrade() else { return };
            let shown = crate::app::with_desk(|d| {
                d.session.as_ref()?;
                d.person = None;
                d.captured.clear();
                Some(filter(&d.staff, &query))
            })
            .flatten();
            match shown {
                Some(rows) => {
                    crate::view::set_staff(&app, &rows);
                    app.global::<Ui>().set_desk_error("".into());
                    step(&app, "search");
                }
                None => step(&app, "signin"),
            }
        }
    });
    ui.on_desk_select({
        let weak = weak.clone();
        move |id| {
            let Some(app) = weak.upgrade() else { return };
            let name = crate::app::with_desk(|d| {
                d.person = d.staff.iter().find(|s| s.id == id as i64).cloned();
                d.captured.clear();
                d.person.as_ref().map(|p| p.name.clone())
            })
            .flatten();
            if let Some(name) = name {
                let ui = app.global::<Ui>();
                ui.set_desk_person(name.into());
                ui.set_desk_captured(0);
                ui.set_desk_duplicate("".into());
                step(&app, "consent");
            }
        }
    });
    ui.on_desk_agree({
        let weak = weak.clone();
        move || {
            let Some(app) = weak.upgrade() else { return };
            let Some((desk, id)) =
                crate::app::with_desk(|d| Some((d.session.clone()?, d.person.as_ref()?.id)))
                    .flatten()
            else {
                return;
            };
            background(
                &app,
                move || desk.set_consent(id, true),
                |app, r| match r {
                    Ok(_) => {
                        app.global::<Ui>().set_desk_error("".into());
                        step(app, "capture")
                    }
                    Err(e) => fail(app, &e),
                },
            );
        }
    });
    ui.on_desk_capture(move || {
        crate::app::with_desk(|d| {
            let _ = d.commands.send(Command::CaptureTemplate);
        });
    });
    ui.on_desk_finish({
        let weak = weak.clone();
        move || {
            let Some(app) = weak.upgrade() else { return };
            let Some((desk, id, templates)) = crate::app::with_desk(|d| {
                Some((
                    d.session.clone()?,
                    d.person.as_ref()?.id,
                    d.captured.clone(),
                ))
            })
            .flatten() else {
                return;
            };
            let done = Arc::new(Mutex::new(0usize));
            background(
                &app,
                move || {
                    for t in &templates {
                        desk.add_template(id, t)?;
                        *done.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    }
                    Ok::<_, kiosk::api::ApiError>(())
                },
                |app, r| {
                    let ui = app.global::<Ui>();
                    match r {
                        Ok(()) => ui.set_desk_error("".into()),
                        Err(e) => fail(app, &e),
                    }
                    step(app, "result");
                },
            );
        }
    });
}
