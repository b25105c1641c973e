//! The hub's words in French, Russian, Korean and English.
//!
//! One table per language, every entry a fixed string; entries with `{name}` slots
//! are filled by [`fill`] with values already formatted for the locale (amounts,
//! dates, numbers). Russian avoids plural-dependent nouns after numbers ("баллов:
//! 16 000"), so no plural rules are needed.

use super::locale::Locale;

/// Every word the hub shows.
pub struct Text {
    pub hub_title: &'static str,
    pub staff_title: &'static str,
    pub skip: &'static str,
    pub language: &'static str,
    pub program: &'static str,

    pub tier_title: &'static str,
    pub no_tier: &'static str,
    /// `{date}`
    pub tier_since: &'static str,
    /// `{date}`
    pub tier_review: &'static str,
    pub tier_never_lowered: &'static str,
    pub tier_no_review: &'static str,

    /// `{tier}`
    pub progress_title: &'static str,
    pub top_tier: &'static str,
    /// `{amount}`, `{tier}`
    pub remaining: &'static str,
    /// `{spend}`, `{threshold}`
    pub of_threshold: &'static str,
    /// `{months}`
    pub spend_rolling: &'static str,
    /// `{year}`
    pub spend_year: &'static str,
    pub spend_lifetime: &'static str,

    pub pending_title: &'static str,
    pub pending_none: &'static str,
    pub pending_rule: &'static str,
    pub col_order: &'static str,
    pub col_amount: &'static str,
    pub col_counts: &'static str,
    pub after_delivery: &'static str,

    pub points_title: &'static str,
    pub points_available: &'static str,
    pub points_pending: &'static str,
    pub points_held: &'static str,
    pub expiry_title: &'static str,
    pub col_points: &'static str,
    pub col_expires: &'static str,
    pub no_expiry: &'static str,
    pub incoming_title: &'static str,
    pub col_available_on: &'static str,

    pub credit_title: &'static str,

    pub benefits_title: &'static str,
    pub benefits_none: &'static str,
    /// `{n}`
    pub benefit_left: &'static str,
    pub benefit_unlimited: &'static str,
    /// `{date}`
    pub benefit_until: &'static str,

    pub history_title: &'static str,
    pub history_none: &'static str,

    pub status_suspended: &'static str,
    pub status_closed: &'static str,
    pub status_opted_out: &'static str,
    pub status_ineligible: &'static str,

    pub e401_title: &'static str,
    pub e401_body: &'static str,
    pub e403_title: &'static str,
    pub e403_body: &'static str,
    pub e404_title: &'static str,
    pub e404_body: &'static str,
    pub e400_title: &'static str,

    pub login_title: &'static str,
    pub login_body: &'static str,
    pub key_label: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub find_title: &'static str,
    pub member_id: &'static str,
    pub find: &'static str,
    pub open_member: &'static str,
    pub timeline_title: &'static str,
    pub col_date: &'static str,
    pub col_what: &'static str,
    pub col_rule: &'static str,
    pub whatif_title: &'static str,
    pub whatif_help: &'static str,
    pub events_label: &'static str,
    pub as_of_label: &'static str,
    pub run: &'static str,
    pub result_title: &'static str,
    pub nothing_written: &'static str,
    pub col_event: &'static str,
    pub col_status: &'static str,
    pub accepted: &'static str,
    pub rejected: &'static str,
    pub qualifying: &'static str,
    pub pending_spend: &'static str,
    pub next_tier: &'static str,
    pub from_now_on: &'static str,
    pub distribution_title: &'static str,
    /// `{n}`, `{program}`
    pub distribution_caption: &'static str,
    /// The chart's bar of members without a tier.
    pub tier_none: &'static str,
    pub inactive: &'static str,
    pub col_tier: &'static str,
    pub col_members: &'static str,
    pub notifications_title: &'static str,
    pub dead_letters_title: &'static str,
    pub no_notifications: &'static str,
    pub no_dead_letters: &'static str,

    // History, one phrase per rule of the timeline.
    pub h_joined: &'static str,
    /// `{tier}`
    pub h_joined_tier: &'static str,
    /// `{order}`, `{amount}`
    pub h_order_placed: &'static str,
    /// `{points}`
    pub h_points_pending: &'static str,
    /// `{order}`, `{date}`
    pub h_order_delivered: &'static str,
    /// `{order}`, `{amount}`
    pub h_window_closed: &'static str,
    /// `{order}`, `{amount}`
    pub h_counted_order: &'static str,
    /// `{amount}`
    pub h_counted: &'static str,
    /// `{tier}`
    pub h_tier_reached: &'static str,
    /// `{tier}`, `{date}`
    pub h_tier_kept: &'static str,
    /// `{tier}`, `{date}`
    pub h_tier_confirmed: &'static str,
    /// `{tier}`
    pub h_tier_raised: &'static str,
    /// `{tier}`
    pub h_tier_lowered: &'static str,
    pub h_tier_ended: &'static str,
    /// `{points}`, `{date}`
    pub h_points_available: &'static str,
    /// `{points}`
    pub h_points_expired: &'static str,
    /// `{points}`
    pub h_points_burned: &'static str,
    /// `{points}`
    pub h_points_given_back: &'static str,
    /// `{points}`, `{order}`
    pub h_points_redeemed: &'static str,
    /// `{points}`
    pub h_birthday: &'static str,
    /// `{order}`, `{amount}`
    pub h_units_removed: &'static str,
    pub h_suspended: &'static str,
    pub h_reinstated: &'static str,
    pub h_closed: &'static str,
    pub h_opted_out: &'static str,
    /// `{benefits}`: one name, or several joined by commas.
    pub h_benefit_granted: &'static str,
    /// `{benefits}`
    pub h_benefit_withdrawn: &'static str,
    /// `{benefits}`
    pub h_benefit_used: &'static str,
}

/// The words of a locale.
pub fn text(locale: Locale) -> &'static Text {
    match locale {
        Locale::En => &EN,
        Locale::Fr => &FR,
        Locale::Ru => &RU,
        Locale::Ko => &KO,
    }
}

/// A benefit's name in the locale, by the benefit ids of the shipped program files
/// (their names are English; `None`: use the program file's name).
pub fn benefit_name(locale: Locale, id: &str) -> Option<&'static str> {
    let [fr, ru, ko] = match id {
        "welcome_gift" => ["Cadeau de bienvenue", "Приветственный подарок", "웰컴 기프트"],
        "birthday_gift" => ["Cadeau d’anniversaire", "Подарок на день рождения", "생일 선물"],
        "exclusive_discount" => ["Remise exclusive", "Эксклюзивная скидка", "익스클루시브 할인"],
        "early_access" => [
            "Accès en avant-première aux Offres et collaborations",
            "Ранний доступ к распродажам и коллекциям",
            "세일 및 컬래버레이션 얼리 액세스",
        ],
        "priority_care" => ["Service clientèle prioritaire", "Приоритетное обслуживание", "우선 고객 서비스"],
        "personal_shopper" => ["Personal shopper dédié", "Персональный шопер", "퍼스널 쇼퍼"],
        "free_express_shipping" => ["Livraison Express gratuite", "Бесплатная экспресс-доставка", "무료 특급 배송"],
        "free_shipping" => {
            ["Livraison gratuite dans le monde entier", "Бесплатная доставка по всему миру", "전 세계 무료 배송"]
        }
        "free_shipping_code" => ["Code de livraison gratuite", "Код на бесплатную доставку", "무료 배송 코드"],
        "priority_phone" => ["Ligne téléphonique prioritaire", "Приоритетная телефонная линия", "우선 통화 서비스"],
        "free_delivery" => ["Livraison gratuite", "Бесплатная доставка", "무료 배송"],
        "personal_offers" => [
            "Offres personnalisées et accès anticipé",
            "Персональные предложения и ранний доступ",
            "맞춤 혜택 및 얼리 액세스",
        ],
        "personal_stylist" => ["Styliste personnel", "Персональный стилист", "퍼스널 스타일리스트"],
        "priority_processing" => {
            ["Traitement prioritaire des commandes", "Приоритетная обработка заказов", "주문 우선 처리"]
        }
        _ => return None,
    };
    match locale {
        Locale::En => None,
        Locale::Fr => Some(fr),
        Locale::Ru => Some(ru),
        Locale::Ko => Some(ko),
    }
}

/// Fills the `{name}` slots of a phrase.
pub fn fill(phrase: &str, values: &[(&str, &str)]) -> String {
    let mut out = phrase.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The first letter in upper case (sentences that start with a phrase).
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

static EN: Text = Text {
    hub_title: "Loyalty Hub",
    staff_title: "Staff console",
    skip: "Skip to content",
    language: "Language",
    program: "Programme",

    tier_title: "Your tier",
    no_tier: "No tier yet",
    tier_since: "since {date}",
    tier_review: "Your tier is reviewed on {date}.",
    tier_never_lowered: "Your level is never lowered.",
    tier_no_review: "This tier has no review date.",

    progress_title: "Progress to {tier}",
    top_tier: "You have reached the highest tier.",
    remaining: "{amount} to go to reach {tier}",
    of_threshold: "{spend} of {threshold}",
    spend_rolling: "Spend counted over the last {months} months",
    spend_year: "Spend counted in {year}",
    spend_lifetime: "Kept purchases in total",

    pending_title: "Pending spend",
    pending_none: "No pending spend.",
    pending_rule: "Purchases count once their returns window has closed.",
    col_order: "Order",
    col_amount: "Amount",
    col_counts: "Counts on",
    after_delivery: "after delivery",

    points_title: "Points",
    points_available: "Available",
    points_pending: "Pending",
    points_held: "Reserved at checkout",
    expiry_title: "Expiry schedule",
    col_points: "Points",
    col_expires: "Expires on",
    no_expiry: "No points to expire.",
    incoming_title: "Points on the way",
    col_available_on: "Available on",

    credit_title: "Store credit",

    benefits_title: "Your benefits",
    benefits_none: "No benefits at the moment.",
    benefit_left: "{n} left",
    benefit_unlimited: "unlimited",
    benefit_until: "valid until {date}",

    history_title: "History",
    history_none: "Nothing yet.",

    status_suspended: "Your membership is suspended: nothing accrues until it is reinstated.",
    status_closed: "This account is closed.",
    status_opted_out: "You have left the programme.",
    status_ineligible: "This account does not take part in the programme.",

    e401_title: "Sign-in needed",
    e401_body: "This page needs a valid link from your account. Ask for a new link if yours has expired.",
    e403_title: "Not allowed",
    e403_body: "Your link does not open this page.",
    e404_title: "Not found",
    e404_body: "There is no such member in this programme.",
    e400_title: "Request not understood",

    login_title: "Staff sign-in",
    login_body: "Sign in with an API key that can read members.",
    key_label: "API key",
    sign_in: "Sign in",
    sign_out: "Sign out",
    find_title: "Find a member",
    member_id: "Member id",
    find: "Find",
    open_member: "Member",
    timeline_title: "Timeline",
    col_date: "Date",
    col_what: "What happened",
    col_rule: "Rule",
    whatif_title: "What-if simulation",
    whatif_help: "Hypothetical events are applied after the member's stored ones, at their own times.",
    events_label: "Hypothetical events (JSON: one per line, or an array)",
    as_of_label: "As of (RFC 3339 instant; empty: now)",
    run: "Run the simulation",
    result_title: "Simulated result",
    nothing_written: "Nothing was written.",
    col_event: "Event",
    col_status: "Status",
    accepted: "accepted",
    rejected: "rejected",
    qualifying: "Qualifying spend",
    pending_spend: "Pending spend",
    next_tier: "Next tier",
    from_now_on: "What would happen",
    distribution_title: "Tier distribution",
    distribution_caption: "{n} members of {program}, now",
    tier_none: "No tier",
    inactive: "Closed, opted out or ineligible",
    col_tier: "Tier",
    col_members: "Members",
    notifications_title: "Pending notifications",
    dead_letters_title: "Dead letters",
    no_notifications: "No notifications.",
    no_dead_letters: "No dead letters.",

    h_joined: "joined the programme",
    h_joined_tier: "joined the programme at {tier}",
    h_order_placed: "order {order} placed: {amount}",
    h_points_pending: "{points} points pending",
    h_order_delivered: "order {order} delivered, returns possible until {date}",
    h_window_closed: "returns window of order {order} closed: {amount}",
    h_counted_order: "{amount} counted (order {order})",
    h_counted: "{amount} counted",
    h_tier_reached: "{tier} reached",
    h_tier_kept: "{tier} kept until {date}",
    h_tier_confirmed: "{tier} confirmed until {date}",
    h_tier_raised: "raised to {tier}",
    h_tier_lowered: "moved to {tier}",
    h_tier_ended: "tier ended",
    h_points_available: "{points} points available until {date}",
    h_points_expired: "{points} points expired",
    h_points_burned: "{points} points removed after a return",
    h_points_given_back: "{points} points given back",
    h_points_redeemed: "{points} points used for order {order}",
    h_birthday: "happy birthday: {points} points",
    h_units_removed: "{amount} returned or cancelled (order {order})",
    h_suspended: "membership suspended",
    h_reinstated: "membership reinstated",
    h_closed: "account closed",
    h_opted_out: "left the programme",
    h_benefit_granted: "benefits granted: {benefits}",
    h_benefit_withdrawn: "benefits withdrawn: {benefits}",
    h_benefit_used: "benefit used: {benefits}",
};

static FR: Text = Text {
    hub_title: "Espace Fidélité",
    staff_title: "Console du personnel",
    skip: "Aller au contenu",
    language: "Langue",
    program: "Programme",

    tier_title: "Votre échelon",
    no_tier: "Pas encore d’échelon",
    tier_since: "depuis le {date}",
    tier_review: "Votre échelon sera réexaminé le {date}.",
    tier_never_lowered: "Votre échelon n’est jamais abaissé.",
    tier_no_review: "Cet échelon n’a pas de date de réexamen.",

    progress_title: "Progression vers {tier}",
    top_tier: "Vous avez atteint l’échelon le plus élevé.",
    remaining: "Plus que {amount} pour atteindre {tier}",
    of_threshold: "{spend} sur {threshold}",
    spend_rolling: "Achats comptabilisés sur les {months} derniers mois",
    spend_year: "Achats comptabilisés en {year}",
    spend_lifetime: "Total des achats conservés",

    pending_title: "Achats en attente",
    pending_none: "Aucun achat en attente.",
    pending_rule: "Les achats sont comptabilisés une fois leur délai de retour écoulé.",
    col_order: "Commande",
    col_amount: "Montant",
    col_counts: "Comptabilisé le",
    after_delivery: "après la livraison",

    points_title: "Points",
    points_available: "Disponibles",
    points_pending: "En attente",
    points_held: "Réservés au paiement",
    expiry_title: "Calendrier d’expiration",
    col_points: "Points",
    col_expires: "Expirent le",
    no_expiry: "Aucun point n’arrive à expiration.",
    incoming_title: "Points à venir",
    col_available_on: "Disponibles le",

    credit_title: "Avoir",

    benefits_title: "Vos avantages",
    benefits_none: "Aucun avantage pour le moment.",
    benefit_left: "reste : {n}",
    benefit_unlimited: "illimité",
    benefit_until: "valable jusqu’au {date}",

    history_title: "Historique",
    history_none: "Rien pour le moment.",

    status_suspended: "Votre adhésion est suspendue : rien n’est cumulé jusqu’à sa réactivation.",
    status_closed: "Ce compte est fermé.",
    status_opted_out: "Vous avez quitté le programme.",
    status_ineligible: "Ce compte ne participe pas au programme.",

    e401_title: "Connexion requise",
    e401_body: "Cette page nécessite un lien valide depuis votre compte. Demandez un nouveau lien si le vôtre a expiré.",
    e403_title: "Accès refusé",
    e403_body: "Votre lien n’ouvre pas cette page.",
    e404_title: "Introuvable",
    e404_body: "Ce programme ne compte aucun membre de ce nom.",
    e400_title: "Requête incomprise",

    login_title: "Connexion du personnel",
    login_body: "Connectez-vous avec une clé d’API autorisée à lire les membres.",
    key_label: "Clé d’API",
    sign_in: "Se connecter",
    sign_out: "Se déconnecter",
    find_title: "Trouver un membre",
    member_id: "Identifiant du membre",
    find: "Rechercher",
    open_member: "Membre",
    timeline_title: "Chronologie",
    col_date: "Date",
    col_what: "Ce qui s’est passé",
    col_rule: "Règle",
    whatif_title: "Simulation",
    whatif_help: "Les événements hypothétiques s’appliquent après ceux du membre, chacun à sa date.",
    events_label: "Événements hypothétiques (JSON : un par ligne, ou un tableau)",
    as_of_label: "À la date du (instant RFC 3339 ; vide : maintenant)",
    run: "Lancer la simulation",
    result_title: "Résultat simulé",
    nothing_written: "Rien n’a été enregistré.",
    col_event: "Événement",
    col_status: "Statut",
    accepted: "accepté",
    rejected: "refusé",
    qualifying: "Achats comptabilisés",
    pending_spend: "Achats en attente",
    next_tier: "Échelon suivant",
    from_now_on: "Ce qui se passerait",
    distribution_title: "Répartition par échelon",
    distribution_caption: "{n} membres de {program}, maintenant",
    tier_none: "Sans échelon",
    inactive: "Fermés, sortis ou non éligibles",
    col_tier: "Échelon",
    col_members: "Membres",
    notifications_title: "Notifications en attente",
    dead_letters_title: "Notifications en échec",
    no_notifications: "Aucune notification.",
    no_dead_letters: "Aucune notification en échec.",

    h_joined: "inscription au programme",
    h_joined_tier: "inscription au programme, échelon {tier}",
    h_order_placed: "commande {order} passée : {amount}",
    h_points_pending: "{points} points en attente",
    h_order_delivered: "commande {order} livrée, retours possibles jusqu’au {date}",
    h_window_closed: "délai de retour de la commande {order} écoulé : {amount}",
    h_counted_order: "{amount} comptabilisés (commande {order})",
    h_counted: "{amount} comptabilisés",
    h_tier_reached: "échelon {tier} atteint",
    h_tier_kept: "échelon {tier} maintenu jusqu’au {date}",
    h_tier_confirmed: "échelon {tier} confirmé jusqu’au {date}",
    h_tier_raised: "passage à l’échelon {tier}",
    h_tier_lowered: "retour à l’échelon {tier}",
    h_tier_ended: "fin de l’échelon",
    h_points_available: "{points} points disponibles jusqu’au {date}",
    h_points_expired: "{points} points expirés",
    h_points_burned: "{points} points retirés après un retour",
    h_points_given_back: "{points} points restitués",
    h_points_redeemed: "{points} points utilisés pour la commande {order}",
    h_birthday: "joyeux anniversaire : {points} points",
    h_units_removed: "{amount} retournés ou annulés (commande {order})",
    h_suspended: "adhésion suspendue",
    h_reinstated: "adhésion réactivée",
    h_closed: "compte fermé",
    h_opted_out: "sortie du programme",
    h_benefit_granted: "avantages accordés : {benefits}",
    h_benefit_withdrawn: "avantages retirés : {benefits}",
    h_benefit_used: "avantage utilisé : {benefits}",
};

static RU: Text = Text {
    hub_title: "Личный кабинет",
    staff_title: "Консоль сотрудника",
    skip: "Перейти к содержимому",
    language: "Язык",
    program: "Программа",

    tier_title: "Ваш уровень",
    no_tier: "Уровень ещё не присвоен",
    tier_since: "с {date}",
    tier_review: "Дата пересмотра уровня: {date}",
    tier_never_lowered: "Уровень никогда не понижается.",
    tier_no_review: "Дата пересмотра уровня не назначена.",

    progress_title: "До уровня {tier}",
    top_tier: "Вы достигли высшего уровня.",
    remaining: "До уровня {tier} осталось {amount}",
    of_threshold: "{spend} из {threshold}",
    spend_rolling: "Покупки за последние {months} мес.",
    spend_year: "Покупки в {year} году",
    spend_lifetime: "Сумма выкупа",

    pending_title: "Покупки в ожидании",
    pending_none: "Нет покупок в ожидании.",
    pending_rule: "Покупка учитывается после окончания срока возврата.",
    col_order: "Заказ",
    col_amount: "Сумма",
    col_counts: "Будет учтено",
    after_delivery: "после доставки",

    points_title: "Баллы",
    points_available: "Доступно",
    points_pending: "Ожидают начисления",
    points_held: "Зарезервировано при оплате",
    expiry_title: "График сгорания",
    col_points: "Баллы",
    col_expires: "Сгорают",
    no_expiry: "Нет баллов, которые сгорят.",
    incoming_title: "Баллы к начислению",
    col_available_on: "Станут доступны",

    credit_title: "Средства на счёте",

    benefits_title: "Ваши привилегии",
    benefits_none: "Пока нет привилегий.",
    benefit_left: "осталось: {n}",
    benefit_unlimited: "без ограничений",
    benefit_until: "действует до {date}",

    history_title: "История",
    history_none: "Пока ничего нет.",

    status_suspended: "Участие приостановлено: до восстановления ничего не начисляется.",
    status_closed: "Этот счёт закрыт.",
    status_opted_out: "Вы вышли из программы.",
    status_ineligible: "Этот счёт не участвует в программе.",

    e401_title: "Требуется вход",
    e401_body: "Для этой страницы нужна действующая ссылка из вашего аккаунта. Запросите новую, если срок действия истёк.",
    e403_title: "Доступ запрещён",
    e403_body: "Ваша ссылка не открывает эту страницу.",
    e404_title: "Не найдено",
    e404_body: "В этой программе нет такого участника.",
    e400_title: "Запрос не понят",

    login_title: "Вход для сотрудников",
    login_body: "Войдите с ключом API, которому разрешено читать данные участников.",
    key_label: "Ключ API",
    sign_in: "Войти",
    sign_out: "Выйти",
    find_title: "Найти участника",
    member_id: "Идентификатор участника",
    find: "Найти",
    open_member: "Участник",
    timeline_title: "Хронология",
    col_date: "Дата",
    col_what: "Что произошло",
    col_rule: "Правило",
    whatif_title: "Моделирование «что если»",
    whatif_help: "Гипотетические события применяются после сохранённых, каждое в своё время.",
    events_label: "Гипотетические события (JSON: по одному в строке или массив)",
    as_of_label: "На момент (RFC 3339; пусто: сейчас)",
    run: "Смоделировать",
    result_title: "Результат моделирования",
    nothing_written: "Ничего не записано.",
    col_event: "Событие",
    col_status: "Статус",
    accepted: "принято",
    rejected: "отклонено",
    qualifying: "Учтённые покупки",
    pending_spend: "Покупки в ожидании",
    next_tier: "Следующий уровень",
    from_now_on: "Что произошло бы",
    distribution_title: "Распределение по уровням",
    distribution_caption: "Участников {program}: {n}, сейчас",
    tier_none: "Без уровня",
    inactive: "Закрытые, вышедшие или неучаствующие",
    col_tier: "Уровень",
    col_members: "Участники",
    notifications_title: "Уведомления в очереди",
    dead_letters_title: "Недоставленные уведомления",
    no_notifications: "Уведомлений нет.",
    no_dead_letters: "Недоставленных уведомлений нет.",

    h_joined: "вступление в программу",
    h_joined_tier: "вступление в программу, уровень {tier}",
    h_order_placed: "заказ {order} оформлен: {amount}",
    h_points_pending: "баллов к начислению: {points}",
    h_order_delivered: "заказ {order} доставлен, возврат возможен до {date}",
    h_window_closed: "срок возврата заказа {order} истёк: {amount}",
    h_counted_order: "учтено {amount} (заказ {order})",
    h_counted: "учтено {amount}",
    h_tier_reached: "достигнут уровень {tier}",
    h_tier_kept: "уровень {tier} сохранён до {date}",
    h_tier_confirmed: "уровень {tier} подтверждён до {date}",
    h_tier_raised: "повышение до уровня {tier}",
    h_tier_lowered: "переход на уровень {tier}",
    h_tier_ended: "уровень снят",
    h_points_available: "доступно баллов: {points} (до {date})",
    h_points_expired: "сгорело баллов: {points}",
    h_points_burned: "списано баллов после возврата: {points}",
    h_points_given_back: "возвращено баллов: {points}",
    h_points_redeemed: "оплачено баллами: {points} (заказ {order})",
    h_birthday: "с днём рождения! Подарено баллов: {points}",
    h_units_removed: "возврат или отмена на {amount} (заказ {order})",
    h_suspended: "участие приостановлено",
    h_reinstated: "участие восстановлено",
    h_closed: "счёт закрыт",
    h_opted_out: "выход из программы",
    h_benefit_granted: "предоставлены привилегии: {benefits}",
    h_benefit_withdrawn: "отменены привилегии: {benefits}",
    h_benefit_used: "использована привилегия: {benefits}",
};

static KO: Text = Text {
    hub_title: "리워드 허브",
    staff_title: "직원 콘솔",
    skip: "본문으로 건너뛰기",
    language: "언어",
    program: "프로그램",

    tier_title: "나의 등급",
    no_tier: "아직 등급이 없습니다",
    tier_since: "{date}부터",
    tier_review: "등급은 {date}에 재산정됩니다.",
    tier_never_lowered: "등급은 하향 조정되지 않습니다.",
    tier_no_review: "이 등급은 재산정 일정이 없습니다.",

    progress_title: "{tier} 등급까지",
    top_tier: "최고 등급에 도달하셨습니다.",
    remaining: "{tier} 등급까지 {amount} 남았습니다",
    of_threshold: "{threshold} 중 {spend}",
    spend_rolling: "최근 {months}개월 구매 금액",
    spend_year: "{year}년 구매 금액",
    spend_lifetime: "누적 구매 금액",

    pending_title: "대기 중인 구매 금액",
    pending_none: "대기 중인 구매 금액이 없습니다.",
    pending_rule: "구매 금액은 반품 기한이 지난 후 반영됩니다.",
    col_order: "주문",
    col_amount: "금액",
    col_counts: "반영 예정일",
    after_delivery: "배송 후",

    points_title: "포인트",
    points_available: "사용 가능",
    points_pending: "적립 예정",
    points_held: "결제 중 보류",
    expiry_title: "소멸 일정",
    col_points: "포인트",
    col_expires: "소멸일",
    no_expiry: "소멸 예정 포인트가 없습니다.",
    incoming_title: "적립 예정 포인트",
    col_available_on: "사용 가능일",

    credit_title: "스토어 크레딧",

    benefits_title: "나의 혜택",
    benefits_none: "현재 받을 수 있는 혜택이 없습니다.",
    benefit_left: "{n}회 남음",
    benefit_unlimited: "무제한",
    benefit_until: "{date}까지 유효",

    history_title: "내역",
    history_none: "아직 내역이 없습니다.",

    status_suspended: "회원 자격이 정지되었습니다. 복원될 때까지 적립되지 않습니다.",
    status_closed: "이 계정은 해지되었습니다.",
    status_opted_out: "리워드 프로그램에서 탈퇴하셨습니다.",
    status_ineligible: "이 계정은 리워드 프로그램 대상이 아닙니다.",

    e401_title: "로그인이 필요합니다",
    e401_body: "이 페이지를 보려면 계정의 유효한 링크가 필요합니다. 링크가 만료되었다면 새 링크를 요청하세요.",
    e403_title: "접근할 수 없습니다",
    e403_body: "이 링크로는 이 페이지를 열 수 없습니다.",
    e404_title: "찾을 수 없습니다",
    e404_body: "이 프로그램에 해당 회원이 없습니다.",
    e400_title: "요청을 처리할 수 없습니다",

    login_title: "직원 로그인",
    login_body: "회원 정보를 읽을 수 있는 API 키로 로그인하세요.",
    key_label: "API 키",
    sign_in: "로그인",
    sign_out: "로그아웃",
    find_title: "회원 찾기",
    member_id: "회원 ID",
    find: "찾기",
    open_member: "회원",
    timeline_title: "타임라인",
    col_date: "날짜",
    col_what: "내용",
    col_rule: "규칙",
    whatif_title: "가상 시뮬레이션",
    whatif_help: "가상 이벤트는 저장된 이벤트 뒤에 각자의 시각으로 적용됩니다.",
    events_label: "가상 이벤트 (JSON: 한 줄에 하나 또는 배열)",
    as_of_label: "기준 시각 (RFC 3339, 비워 두면 현재)",
    run: "시뮬레이션 실행",
    result_title: "시뮬레이션 결과",
    nothing_written: "아무것도 저장되지 않았습니다.",
    col_event: "이벤트",
    col_status: "상태",
    accepted: "수락",
    rejected: "거부",
    qualifying: "반영된 구매 금액",
    pending_spend: "대기 중인 구매 금액",
    next_tier: "다음 등급",
    from_now_on: "예상 결과",
    distribution_title: "등급 분포",
    distribution_caption: "{program} 회원 {n}명, 현재",
    tier_none: "등급 없음",
    inactive: "해지·탈퇴·대상 외",
    col_tier: "등급",
    col_members: "회원 수",
    notifications_title: "대기 중인 알림",
    dead_letters_title: "전송 실패 알림",
    no_notifications: "알림이 없습니다.",
    no_dead_letters: "전송 실패 알림이 없습니다.",

    h_joined: "프로그램 가입",
    h_joined_tier: "프로그램 가입, {tier} 등급",
    h_order_placed: "주문 {order} 완료: {amount}",
    h_points_pending: "{points}포인트 적립 예정",
    h_order_delivered: "주문 {order} 배송 완료, {date}까지 반품 가능",
    h_window_closed: "주문 {order} 반품 기한 종료: {amount}",
    h_counted_order: "{amount} 반영 (주문 {order})",
    h_counted: "{amount} 반영",
    h_tier_reached: "{tier} 등급 달성",
    h_tier_kept: "{date}까지 {tier} 등급 유지",
    h_tier_confirmed: "{date}까지 {tier} 등급 확정",
    h_tier_raised: "{tier} 등급으로 상향 조정",
    h_tier_lowered: "{tier} 등급으로 조정",
    h_tier_ended: "등급 종료",
    h_points_available: "{points}포인트 사용 가능 ({date}까지)",
    h_points_expired: "{points}포인트 소멸",
    h_points_burned: "반품으로 {points}포인트 차감",
    h_points_given_back: "{points}포인트 반환",
    h_points_redeemed: "주문 {order}에 {points}포인트 사용",
    h_birthday: "생일 축하 {points}포인트",
    h_units_removed: "{amount} 반품·취소 (주문 {order})",
    h_suspended: "회원 자격 정지",
    h_reinstated: "회원 자격 복원",
    h_closed: "계정 해지",
    h_opted_out: "프로그램 탈퇴",
    h_benefit_granted: "혜택 지급: {benefits}",
    h_benefit_withdrawn: "혜택 회수: {benefits}",
    h_benefit_used: "혜택 사용: {benefits}",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_filled() {
        let phrase = fill(text(Locale::En).remaining, &[("amount", "€2,850.00"), ("tier", "Gold")]);
        assert_eq!(phrase, "€2,850.00 to go to reach Gold");
        assert_eq!(capitalized("échelon Silver atteint"), "Échelon Silver atteint");
        assert_eq!(capitalized(""), "");
    }

    #[test]
    fn every_language_fills_the_same_slots() {
        let slots = |t: &Text| {
            [
                t.tier_since,
                t.tier_review,
                t.progress_title,
                t.remaining,
                t.of_threshold,
                t.spend_rolling,
                t.spend_year,
                t.benefit_left,
                t.benefit_until,
                t.distribution_caption,
                t.h_joined_tier,
                t.h_order_placed,
                t.h_points_pending,
                t.h_order_delivered,
                t.h_window_closed,
                t.h_counted_order,
                t.h_counted,
                t.h_tier_reached,
                t.h_tier_kept,
                t.h_tier_confirmed,
                t.h_tier_raised,
                t.h_tier_lowered,
                t.h_points_available,
                t.h_points_expired,
                t.h_points_burned,
                t.h_points_given_back,
                t.h_points_redeemed,
                t.h_birthday,
                t.h_units_removed,
                t.h_benefit_granted,
                t.h_benefit_withdrawn,
                t.h_benefit_used,
            ]
            .map(|phrase| {
                let mut names: Vec<&str> =
                    phrase.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(n, _)| n)).collect();
                names.sort_unstable();
                names
            })
        };
        let english = slots(&EN);
        for locale in [Locale::Fr, Locale::Ru, Locale::Ko] {
            assert_eq!(slots(text(locale)), english, "{locale:?}");
        }
    }
}
