//! The admin API (users, API tokens, aliases) and the own-password change.
//!
//! Every route needs a session or token ([`crate::api::require_session`]); all but
//! `GET /aliases` and `POST /me/password` also need the admin role. Changing or deleting a
//! user ends that user's sessions. The last admin can be neither deleted nor demoted, so the
//! server can always be administered.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use store::{Store, User};

use crate::aliases::{self, Alias, ALIAS_NAMESPACE, MAX_ALIASES};
use crate::api::{AuthKind, Authenticated};
use crate::auth::{hash_password, verify_password, MAX_PASSWORD_BYTES};
use crate::query::{format_time_us, now_us};
use crate::tokens::{self, MAX_TOKEN_NAME_BYTES};
use crate::{ApiError, AppState};

/// Largest admin request body, in bytes.
const MAX_ADMIN_BODY: usize = 16 * 1024;

/// Shortest password accepted when setting one.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest user name, in bytes.
pub const MAX_NEW_USERNAME_BYTES: usize = 64;

/// Reads a JSON body of at most [`MAX_ADMIN_BODY`] bytes into `T` (unknown keys refused by
/// `T`'s own `deny_unknown_fields`).
pub async fn json_body<T: DeserializeOwned>(request: Request) -> Result<T, ApiError> {
    let body = axum::body::to_bytes(request.into_body(), MAX_ADMIN_BODY)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!("request body above {MAX_ADMIN_BODY} bytes"))
        })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("JSON body: {e}")))
}

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.inner.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref())).await?
}

fn store_err(e: store::StoreError) -> ApiError {
    ApiError::from_store(e, false)
}

fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NEW_USERNAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "username must be 1 to {MAX_NEW_USERNAME_BYTES} letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "password must be {MIN_PASSWORD_CHARS} characters to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

fn user_json(u: &User) -> Value {
    json!({"username": u.name, "admin": u.admin})
}

/// `GET /api/v1/users` → `{items: [{username, admin}]}`.
pub async fn list_users(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Json<Value>, ApiError> {
    auth.require_admin()?;
    let users = blocking(&state, |s| s.users().map_err(store_err)).await?;
    let items: Vec<Value> = users.iter().map(user_json).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /api/v1/users {username, password, admin}` → 201 `{username, admin}`; 409 when the
/// name is taken.
pub async fn create_user(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    request: Request,
) -> Result<Response, ApiError> {
    auth.require_admin()?;
    let new: NewUser = json_body(request).await?;
    check_username(&new.username)?;
    check_password(&new.password)?;
    let _permit = state
        .inner
        .hash_permits
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = blocking(&state, move |s| {
        if s.user(&new.username).map_err(store_err)?.is_some() {
            return Err(ApiError::Conflict(format!(
                "user {:?} exists already",
                new.username
            )));
        }
        let user = User {
            name: new.username,
            password_hash: hash_password(&new.password)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            admin: new.admin,
        };
        s.put_user(&user).map_err(store_err)?;
        Ok(user)
    })
    .await?;
    tracing::info!(by = %auth.user, user = %user.name, admin = user.admin, "user created");
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserUpdate {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    admin: Option<bool>,
}

/// Whether removing admin rights from (or deleting) `name` would leave no admin.
fn is_last_admin(store: &dyn Store, name: &str) -> Result<bool, ApiError> {
    let users = store.users().map_err(store_err)?;
    let admins: Vec<&User> = users.iter().filter(|u| u.admin).collect();
    Ok(admins.len() == 1 && admins.first().is_some_and(|u| u.name == name))
}

/// `PATCH /api/v1/users/{name} {password?, admin?}` → `{username, admin}`; ends the user's
/// sessions.
pub async fn update_user(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    auth.require_admin()?;
    let update: UserUpdate = json_body(request).await?;
    if let Some(p) = &update.password {
        check_password(p)?;
    }
    let _permit = state
        .inner
        .hash_permits
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let target = name.clone();
    let user = blocking(&state, move |s| {
        let mut user = s
            .user(&target)
            .map_err(store_err)?
            .ok_or_else(|| ApiError::NotFound(format!("no user {target:?}")))?;
        if update.admin == Some(false) && user.admin && is_last_admin(s, &target)? {
            return Err(ApiError::Conflict(
                "the last admin cannot lose the admin role".into(),
            ));
        }
        if let Some(p) = &update.password {
            user.password_hash = hash_password(p).map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        if let Some(a) = update.admin {
            user.admin = a;
        }
        s.put_user(&user).map_err(store_err)?;
        Ok(user)
    })
    .await?;
    let ended = state.inner.sessions.remove_user(&name);
    tracing::info!(by = %auth.user, user = %name, sessions_ended = ended, "user updated");
    Ok(Json(user_json(&user)))
}

/// `DELETE /api/v1/users/{name}` → 204; 404 when unknown, 409 for the last admin.
pub async fn delete_user(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    let target = name.clone();
    blocking(&state, move |s| {
        let user = s
            .user(&target)
            .map_err(store_err)?
            .ok_or_else(|| ApiError::NotFound(format!("no user {target:?}")))?;
        if user.admin && is_last_admin(s, &target)? {
            return Err(ApiError::Conflict(
                "the last admin cannot be deleted".into(),
            ));
        }
        s.delete_user(&target).map_err(store_err)?;
        Ok(())
    })
    .await?;
    state.inner.sessions.remove_user(&name);
    tracing::info!(by = %auth.user, user = %name, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/me/password {current_password, new_password}` → 200; the caller's other
/// sessions end, this one stays.
pub async fn change_own_password(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let AuthKind::Session { token, .. } = &auth.kind else {
        return Err(ApiError::Forbidden(
            "API tokens have no password; log in as a user".into(),
        ));
    };
    let change: PasswordChange = json_body(request).await?;
    check_password(&change.new_password)?;
    let _permit = state
        .inner
        .hash_permits
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let name = auth.user.clone();
    blocking(&state, move |s| {
        let mut user = s
            .user(&name)
            .map_err(store_err)?
            .ok_or(ApiError::Unauthorized("user no longer exists"))?;
        if change.current_password.len() > MAX_PASSWORD_BYTES
            || !verify_password(&change.current_password, &user.password_hash)
        {
            return Err(ApiError::Forbidden("current password is wrong".into()));
        }
        user.password_hash =
            hash_password(&change.new_password).map_err(|e| ApiError::Internal(e.to_string()))?;
        s.put_user(&user).map_err(store_err)
    })
    .await?;
    // The user's other sessions end (a stolen one stops working); this one stays.
    state.inner.sessions.remove_user_except(&auth.user, token);
    Ok(Json(json!({"status": "password changed"})))
}

fn token_json(id: &str, t: &tokens::StoredToken) -> Value {
    json!({
        "id": id,
        "name": t.name,
        "admin": t.admin,
        "created": format_time_us(t.created_us),
        "created_us": t.created_us,
        "created_by": t.created_by,
        "expires": t.expires_us.and_then(format_time_us),
        "expires_us": t.expires_us,
        "expired": t.expired(now_us()),
        "last_used": t.last_used_us.and_then(format_time_us),
        "last_used_us": t.last_used_us,
    })
}

/// Longest lifetime a token may be given, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// `GET /api/v1/tokens` → `{items: [{id, name, admin, created, created_us, created_by,
/// expires, expires_us, expired, last_used, last_used_us}]}` (never the token itself).
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Json<Value>, ApiError> {
    auth.require_admin()?;
    let list = blocking(&state, |s| tokens::list(s).map_err(store_err)).await?;
    let items: Vec<Value> = list.iter().map(|(id, t)| token_json(id, t)).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    #[serde(default)]
    admin: bool,
    /// Lifetime in days (1 to [`MAX_TOKEN_DAYS`]); absent: the token does not expire.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// `POST /api/v1/tokens {name, admin, expires_in_days?}` → 201 `{id, name, admin, created…,
/// expires…, token}`: the only time the token is shown.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    request: Request,
) -> Result<Response, ApiError> {
    auth.require_admin()?;
    let new: NewToken = json_body(request).await?;
    let name = new.name.trim().to_string();
    if name.is_empty() || name.len() > MAX_TOKEN_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_TOKEN_NAME_BYTES} bytes without control characters"
        )));
    }
    let expires_us = match new.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => {
            Some(now_us().saturating_add(i64::from(days) * 86_400_000_000))
        }
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "expires_in_days must be 1 to {MAX_TOKEN_DAYS}"
            )))
        }
    };
    let by = auth.user.clone();
    let (id, token, entry) = blocking(&state, move |s| {
        tokens::create(s, &name, new.admin, &by, now_us(), expires_us).map_err(|e| match e {
            crate::WebError::Store(e) => store_err(e),
            other => ApiError::Internal(other.to_string()),
        })
    })
    .await?;
    tracing::info!(by = %auth.user, token = %entry.name, id = %id, "API token created");
    let mut body = token_json(&id, &entry);
    body["token"] = token.into();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/tokens/{id}` → 204, or 404.
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    let target = id.clone();
    let existed = blocking(&state, move |s| {
        tokens::revoke(s, &target).map_err(store_err)
    })
    .await?;
    if !existed {
        return Err(ApiError::NotFound(format!("no token {id:?}")));
    }
    tracing::info!(by = %auth.user, id = %id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn alias_json(id: &str, a: &Alias) -> Value {
    json!({"id": id, "address": a.address, "port": a.port, "node": a.node, "name": a.name})
}

/// `GET /api/v1/aliases` (any user) → `{items: [{id, address, port, node, name}]}`.
pub async fn list_aliases(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = blocking(&state, |s| aliases::list(s).map_err(store_err)).await?;
    let items: Vec<Value> = list.iter().map(|(id, a)| alias_json(id, a)).collect();
    Ok(Json(json!({ "items": items })))
}

fn checked_alias(mut a: Alias) -> Result<Alias, ApiError> {
    a.name = a.name.trim().to_string();
    a.address = a.address.trim().to_string();
    a.validate().map_err(ApiError::BadRequest)?;
    Ok(a)
}

fn put_alias(s: &dyn Store, id: &str, a: &Alias) -> Result<(), ApiError> {
    let json = serde_json::to_string(a).map_err(|e| ApiError::Internal(e.to_string()))?;
    s.put_setting(ALIAS_NAMESPACE, id, Some(&json))
        .map_err(store_err)
}

/// `POST /api/v1/aliases {address, port?, node?, name}` → 201 with the `id`.
pub async fn create_alias(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    request: Request,
) -> Result<Response, ApiError> {
    auth.require_admin()?;
    let alias = checked_alias(json_body(request).await?)?;
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw).map_err(|e| ApiError::Internal(e.to_string()))?;
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let stored = alias.clone();
    let key = id.clone();
    blocking(&state, move |s| {
        if s.settings(ALIAS_NAMESPACE).map_err(store_err)?.len() >= MAX_ALIASES {
            return Err(ApiError::Conflict(format!("at most {MAX_ALIASES} aliases")));
        }
        put_alias(s, &key, &stored)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(alias_json(&id, &alias))).into_response())
}

/// `PUT /api/v1/aliases/{id} {address, port?, node?, name}` → the alias; 404 when unknown.
pub async fn replace_alias(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    auth.require_admin()?;
    let alias = checked_alias(json_body(request).await?)?;
    let stored = alias.clone();
    let key = id.clone();
    blocking(&state, move |s| {
        if s.setting(ALIAS_NAMESPACE, &key)
            .map_err(store_err)?
            .is_none()
        {
            return Err(ApiError::NotFound(format!("no alias {key:?}")));
        }
        put_alias(s, &key, &stored)
    })
    .await?;
    Ok(Json(alias_json(&id, &alias)))
}

/// `DELETE /api/v1/aliases/{id}` → 204, or 404.
pub async fn delete_alias(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    let key = id.clone();
    blocking(&state, move |s| {
        if s.setting(ALIAS_NAMESPACE, &key)
            .map_err(store_err)?
            .is_none()
        {
            return Err(ApiError::NotFound(format!("no alias {key:?}")));
        }
        s.put_setting(ALIAS_NAMESPACE, &key, None)
            .map_err(store_err)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
