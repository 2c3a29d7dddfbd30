"""Image-quality metrics: PSNR, SSIM, LPIPS, FID/FD-VGG, Dice."""
