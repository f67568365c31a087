export { TenantPlugin, type TenantPluginOptions } from './tenant-plugin.js'
