use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub full_name: String,
    pub password_hash: String,
    pub is_active: bool,
    pub date_joined: DateTimeUtc,
    pub last_login: Option<DateTimeUtc>,
    pub email_verified_at: Option<DateTimeUtc>,
    /// When a requested deletion is due; `None`: none requested.
    pub deletion_scheduled_for: Option<DateTimeUtc>,
    /// The WebAuthn user handle of the user's passkeys (random; never the id).
    #[sea_orm(unique)]
    pub webauthn_handle: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for crate::domain::user::User {
    fn from(m: Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            full_name: m.full_name,
            is_active: m.is_active,
            date_joined: m.date_joined,
            last_login: m.last_login,
            email_verified_at: m.email_verified_at,
            deletion_scheduled_for: m.deletion_scheduled_for,
            has_password: !m.password_hash.is_empty(),
        }
    }
}
