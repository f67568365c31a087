export { allObjectsExtension } from './all-objects-extension.js'
export {
  allObjectsPrismaAdapter,
  type PrismaPgOptions,
  tenantPrismaAdapter,
} from './tenant-adapter.js'
