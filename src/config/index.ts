export { CONFIG_KEYS, type ConfigKey, type RowtenancyConfig } from './config-keys.js'
export { CONFIG_FILES, type LoadConfigOptions, loadConfig } from './load-config.js'
