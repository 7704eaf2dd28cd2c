// Clouds: OpenStack (Capstan's `stack push` / `stack run`): Keystone v3 auth from OS_* or
// clouds.yaml, Glance v2 uploads, Nova servers.
export {
  pushImage, runInstances, connectOpenStack, StackRun,
  type PushImageOptions, type PushedImage, type RunInstancesOptions, type StackImage, type StackOptions,
} from './openstack/stack.js';
export {
  resolveAuthSettings, authSettingsFromEnv, cloudSettings, cloudsYamlCandidates, hasOpenStackEnv,
  type AuthSettings, type AuthSourceOptions, type AuthType,
} from './openstack/clouds-yaml.js';
export { OpenStackSession, keystoneV3Url, authRequestBody, catalogEndpoint, type CatalogService, type Token, type SessionOptions } from './openstack/keystone.js';
export { OpenStackHttp, openstackMessage, type OpenStackHttpSettings, type OpenStackRequest, type OpenStackResponse } from './openstack/http.js';
export { findImage, imagesNamed, getImage, deleteImage, CAPSTAN_TAGS, type GlanceImage } from './openstack/glance.js';
export {
  listFlavors, pickFlavor, namedFlavor, flavorMisfit, getServer, consoleOutput, deleteServer,
  type Flavor, type FlavorNeeds, type Server, type NetworksOption,
} from './openstack/nova.js';
export { prepareUpload, type UploadSource, type UploadFormat } from './image-upload.js';
