// Messages of the console in Chinese (the default, as the API's) and
// English. t(key, vars) formats one; apply(root) fills the elements that
// carry data-i18n (text), data-i18n-placeholder and data-i18n-label.

const messages = {
  zh: {
    title: '令牌管理',
    sign_out: '退出登录',
    sign_in_title: '登录',
    sign_in_hint: '粘贴你的用户访问令牌（at-…），它只保存在本标签页中。',
    access_token: '访问令牌',
    sign_in: '登录',
    sign_in_empty: '请粘贴访问令牌',
    session_invalid: '访问令牌无效或已失效，请重新登录',
    network_error: '网络错误，请稍后重试',
    server_error: '服务器错误（{status}）',
    tokens: '令牌',
    search_name: '名称',
    search_name_ph: '按名称搜索',
    search_key: '密钥',
    search_key_ph: 'sk-… 或其中一段',
    search: '搜索',
    reset: '重置',
    create: '添加令牌',
    batch_copy: '复制所选密钥',
    batch_delete: '删除所选',
    selected: '已选 {n} 个',
    select_all: '全选本页',
    select_row: '选择 {name}',
    col_name: '名称',
    col_status: '状态',
    col_key: '密钥',
    col_remain: '剩余额度',
    col_used: '已用额度',
    col_windows: '消费窗口',
    col_expiry: '过期时间',
    col_created: '创建时间',
    col_accessed: '最近使用',
    col_enabled: '启用',
    col_actions: '操作',
    empty: '还没有令牌',
    no_results: '没有匹配的令牌',
    pagination: '分页',
    prev: '上一页',
    next: '下一页',
    page_size: '每页',
    page_info: '第 {page} / {pages} 页，共 {total} 个',
    search_info: '找到 {n} 个（最多显示 100 个）',
    status_1: '已启用',
    status_2: '已禁用',
    status_3: '已过期',
    status_4: '已耗尽',
    unlimited: '无限',
    never_expires: '永不过期',
    never_used: '从未使用',
    copy: '复制',
    copy_key_of: '复制 {name} 的密钥',
    copied: '已复制',
    copied_n: '已复制 {n} 个密钥',
    copy_failed: '无法写入剪贴板，请手动复制',
    edit: '编辑',
    edit_of: '编辑 {name}',
    delete: '删除',
    delete_of: '删除 {name}',
    enable_of: '启用 {name}',
    enabled: '已启用',
    disabled: '已禁用',
    confirm: '确认',
    confirm_delete: '删除令牌“{name}”？此操作无法撤销。',
    confirm_batch_delete: '删除所选的 {n} 个令牌？此操作无法撤销。',
    deleted_n: '已删除 {n} 个令牌',
    deleted: '已删除',
    saved: '已保存',
    create_title: '添加令牌',
    edit_title: '编辑令牌',
    f_name: '名称',
    f_expiry: '过期时间',
    exp_never: '永不过期',
    exp_hour: '一小时',
    exp_day: '一天',
    exp_month: '一个月',
    exp_custom: '自定义',
    exp_keep: '保持不变',
    exp_custom_date: '自定义过期时间',
    exp_custom_missing: '请选择过期时间',
    f_quota: '额度',
    unlimited_quota: '无限额度',
    remain_quota: '剩余额度',
    f_models: '模型限制',
    models_enabled: '只允许下列模型',
    model_add: '添加模型（回车或逗号）',
    remove_model: '移除 {model}',
    f_ips: 'IP 白名单（每行一个 IP 或 CIDR，留空不限）',
    ips_invalid: '无效的 IP 或 CIDR：{list}',
    f_group: '分组（留空为默认）',
    f_rpm: '每分钟请求上限（0 不限）',
    f_count: '数量（批量创建 1-49）',
    f_windows: '消费窗口',
    windows_hint: '每个时间段内最多可消费的额度，到点自动重置；0 或留空为不限。',
    period_minute: '每分钟',
    period_hour: '每小时',
    period_day: '每天',
    period_week: '每周',
    period_month: '每月',
    f_budget_tz: '窗口时区（留空为部署默认）',
    budget_tz_ph: 'IANA 时区，例如 Asia/Shanghai',
    no_windows: '不限',
    window_resets: '{when}重置',
    window_of: '{period}：已用 {used} / {limit}',
    cancel: '取消',
    submit: '提交',
    keys_title: '请保存你的密钥',
    keys_hint: '完整密钥只在此显示一次；之后可在列表中复制。',
    key_title: '密钥',
    key_hint: '无法写入剪贴板，请手动复制下面的密钥。',
    copy_all: '全部复制',
    close: '关闭',
    ago: '{rel}',
  },
  en: {
    title: 'Tokens',
    sign_out: 'Sign out',
    sign_in_title: 'Sign in',
    sign_in_hint: 'Paste your user access token (at-…). It is kept in this tab only.',
    access_token: 'Access token',
    sign_in: 'Sign in',
    sign_in_empty: 'Paste an access token',
    session_invalid: 'The access token is invalid or revoked; sign in again',
    network_error: 'Network error; try again later',
    server_error: 'Server error ({status})',
    tokens: 'Tokens',
    search_name: 'Name',
    search_name_ph: 'Search by name',
    search_key: 'Key',
    search_key_ph: 'sk-… or a part of it',
    search: 'Search',
    reset: 'Reset',
    create: 'New token',
    batch_copy: 'Copy selected keys',
    batch_delete: 'Delete selected',
    selected: '{n} selected',
    select_all: 'Select all on this page',
    select_row: 'Select {name}',
    col_name: 'Name',
    col_status: 'Status',
    col_key: 'Key',
    col_remain: 'Remaining',
    col_used: 'Used',
    col_windows: 'Spend windows',
    col_expiry: 'Expires',
    col_created: 'Created',
    col_accessed: 'Last used',
    col_enabled: 'Enabled',
    col_actions: 'Actions',
    empty: 'No tokens yet',
    no_results: 'No matching tokens',
    pagination: 'Pagination',
    prev: 'Previous',
    next: 'Next',
    page_size: 'Per page',
    page_info: 'Page {page} of {pages}, {total} tokens',
    search_info: '{n} found (at most 100 shown)',
    status_1: 'Enabled',
    status_2: 'Disabled',
    status_3: 'Expired',
    status_4: 'Exhausted',
    unlimited: 'Unlimited',
    never_expires: 'Never',
    never_used: 'Never used',
    copy: 'Copy',
    copy_key_of: 'Copy the key of {name}',
    copied: 'Copied',
    copied_n: '{n} keys copied',
    copy_failed: 'Could not write to the clipboard; copy by hand',
    edit: 'Edit',
    edit_of: 'Edit {name}',
    delete: 'Delete',
    delete_of: 'Delete {name}',
    enable_of: 'Enable {name}',
    enabled: 'Enabled',
    disabled: 'Disabled',
    confirm: 'Confirm',
    confirm_delete: 'Delete the token “{name}”? This cannot be undone.',
    confirm_batch_delete: 'Delete the {n} selected tokens? This cannot be undone.',
    deleted_n: '{n} tokens deleted',
    deleted: 'Deleted',
    saved: 'Saved',
    create_title: 'New token',
    edit_title: 'Edit token',
    f_name: 'Name',
    f_expiry: 'Expiry',
    exp_never: 'Never',
    exp_hour: '1 hour',
    exp_day: '1 day',
    exp_month: '1 month',
    exp_custom: 'Custom',
    exp_keep: 'Unchanged',
    exp_custom_date: 'Custom expiry',
    exp_custom_missing: 'Choose an expiry date',
    f_quota: 'Quota',
    unlimited_quota: 'Unlimited quota',
    remain_quota: 'Remaining quota',
    f_models: 'Model limits',
    models_enabled: 'Allow only these models',
    model_add: 'Add a model (Enter or comma)',
    remove_model: 'Remove {model}',
    f_ips: 'IP allow list (one IP or CIDR per line; empty allows any)',
    ips_invalid: 'Not an IP address or CIDR: {list}',
    f_group: 'Group (empty: your default)',
    f_rpm: 'Requests per minute (0: no limit)',
    f_count: 'Count (batch creation, 1-49)',
    f_windows: 'Spend windows',
    windows_hint: 'The most the key may spend in each period; each window resets on the clock. 0 or empty: no window.',
    period_minute: 'Per minute',
    period_hour: 'Per hour',
    period_day: 'Per day',
    period_week: 'Per week',
    period_month: 'Per month',
    f_budget_tz: 'Time zone of the windows (empty: the deployment default)',
    budget_tz_ph: 'An IANA zone, e.g. Asia/Shanghai',
    no_windows: 'None',
    window_resets: 'resets {when}',
    window_of: '{period}: {used} of {limit} used',
    cancel: 'Cancel',
    submit: 'Submit',
    keys_title: 'Save your keys',
    keys_hint: 'The full keys are shown here once; later, copy them from the list.',
    key_title: 'Key',
    key_hint: 'The clipboard is not available: copy the key below by hand.',
    copy_all: 'Copy all',
    close: 'Close',
    ago: '{rel}',
  },
};

const STORAGE_KEY = 'console.lang';

/** The current language: 'zh' or 'en'. */
export let lang = initialLang();

function initialLang() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage may be off; follow the browser.
  }
  if (saved === 'zh' || saved === 'en') return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'zh'];
  return String(langs[0]).toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

/** setLang switches the language and remembers the choice. */
export function setLang(l) {
  lang = l === 'en' ? 'en' : 'zh';
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not remembered; still switched.
  }
}

/** The value of Accept-Language the API gets, so its messages match the page. */
export function acceptLanguage() {
  return lang === 'en' ? 'en' : 'zh-CN';
}

/** The BCP 47 tag for Intl formatting and <html lang>. */
export function locale() {
  return lang === 'en' ? 'en' : 'zh-CN';
}

/** t formats the message key with vars ({name} placeholders). */
export function t(key, vars = {}) {
  const s = messages[lang][key] ?? messages.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** apply translates every marked element under root. */
export function apply(root = document) {
  document.documentElement.lang = locale();
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
}
