/**
 * Visualisation: what a trained convspec model learned and where it looks, for 1D, 2D and 3D specs.
 *
 *   filters      kernels as pictures (./filters.ts)
 *   maximize     activation maximisation with transform robustness and priors (./maximize.ts)
 *   gradCam      Grad-CAM / Grad-CAM++ over any number of spatial axes (./gradcam.ts)
 *   invert       feature inversion with a total-variation prior (./invert.ts)
 *   receptive    theoretical and effective receptive fields of a unit (./receptive.ts)
 *   report       one self-contained HTML page (./report.ts)
 * with rasters, colormaps, plots and SVG charts that need no canvas or browser.
 */
export { VizError, resolveLayer, runGraph, classifierFeatureLayers, scoreNode, modelInput, spatialRankOf } from './network.js';
export type { RunGraphOptions } from './network.js';
export { renderFilters, convolutionLayers, readsModelInput } from './filters.js';
export type { FilterOptions, FilterPicture } from './filters.js';
export { maximizeActivation } from './maximize.js';
export type { MaximizeOptions, MaximizeResult } from './maximize.js';
export { gradCam, foregroundBox, heatFractionInside, CAM_METHOD_NAMES } from './gradcam.js';
export type { GradCamOptions, GradCamResult, LayerCam, CamMethod, CamMethodChoice, Box } from './gradcam.js';
export { invertFeatures } from './invert.js';
export type { InvertOptions, Inversion } from './invert.js';
export { receptiveFieldMap, centralBox } from './receptive.js';
export type { ReceptiveFieldOptions, ReceptiveFieldMap } from './receptive.js';
export { renderReport } from './report.js';
export type { ReportInput } from './report.js';
export { colormap, colorAt, colormapNames } from './colormap.js';
export type { Colormap, ColormapName } from './colormap.js';
export { encodePng, decodePngRaster, createRaster, grid, scaleNearest } from './raster.js';
export type { Raster, Rgb } from './raster.js';
export { renderSample, renderHeat, renderOverlay } from './render.js';
export type { Sample } from './render.js';
export { gradCamPictures, maximizePicture, inversionPicture, receptivePicture } from './pictures.js';
